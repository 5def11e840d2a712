#include "fog/importer.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "image/table.h"

namespace shoal::fog {
namespace {

std::uint16_t le16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) |
                                      (std::to_integer<unsigned>(p[1]) << 8));
}
std::uint32_t le32(const std::byte* p) {
    return std::uint32_t{le16(p)} | (std::uint32_t{le16(p + 2)} << 16);
}

bool text_at(std::span<const std::byte> b, std::size_t at, std::string_view s) {
    return b.size() >= at + s.size() && std::memcmp(b.data() + at, s.data(), s.size()) == 0;
}

// ext2/3/4 from the superblock at byte 1024: ext4 if it uses any ext4-only feature, ext3
// if it has a journal, else ext2 (what `blkid` calls them).
image::fs_type ext_flavour(std::span<const std::byte> first) {
    constexpr std::size_t sb = 1024;
    if (first.size() < sb + 0x68 || le16(first.data() + sb + 0x38) != 0xEF53) {
        return image::fs_type::ext4;  // cannot tell: ext4's tools handle all three
    }
    const std::uint32_t compat = le32(first.data() + sb + 0x5C);
    const std::uint32_t incompat = le32(first.data() + sb + 0x60);
    const std::uint32_t ro_compat = le32(first.data() + sb + 0x64);
    constexpr std::uint32_t incompat_ext4 =
        0x0040 /*extents*/ | 0x0080 /*64bit*/ | 0x0200 /*flex_bg*/ | 0x0400 /*ea_inode*/ |
        0x1000 /*dirdata*/ | 0x2000 /*csum_seed*/ | 0x4000 /*largedir*/ | 0x8000 /*inline_data*/;
    constexpr std::uint32_t ro_compat_ext4 = 0x0008 /*huge_file*/ | 0x0010 /*gdt_csum*/ |
                                             0x0020 /*dir_nlink*/ | 0x0040 /*extra_isize*/ |
                                             0x0400 /*metadata_csum*/;
    if ((incompat & incompat_ext4) != 0 || (ro_compat & ro_compat_ext4) != 0) {
        return image::fs_type::ext4;
    }
    return (compat & 0x0004 /*has_journal*/) != 0 ? image::fs_type::ext3 : image::fs_type::ext2;
}

std::string ext_label(std::span<const std::byte> first) {
    constexpr std::size_t at = 1024 + 0x78;
    std::string s;
    for (std::size_t i = 0; i < 16 && at + i < first.size(); ++i) {
        const auto c = std::to_integer<unsigned char>(first[at + i]);
        if (c < 0x20 || c > 0x7e) {
            break;
        }
        s.push_back(static_cast<char>(c));
    }
    return s;
}

// The Linux swap header (v1, "SWAPSPACE2") that mkswap writes, for one 4 KiB page:
// FOG does not image swap partitions, it saves their UUID and runs mkswap on deploy.
std::vector<std::byte> swap_header(std::uint64_t size_bytes, std::string_view uuid) {
    constexpr std::size_t page = 4096;
    std::vector<std::byte> h(page);
    auto put32 = [&](std::size_t at, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            h[at + static_cast<std::size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
        }
    };
    put32(1024, 1);  // version
    put32(1028, static_cast<std::uint32_t>(std::min<std::uint64_t>(size_bytes / page - 1,
                                                                   UINT32_MAX)));  // last page
    put32(1032, 0);                                                                // bad pages
    // The UUID's 32 hex digits, dashes skipped, in order.
    std::size_t k = 0;
    for (std::size_t i = 0; i + 1 < uuid.size() && k < 16;) {
        if (uuid[i] == '-') {
            ++i;
            continue;
        }
        auto hex = [](char c) -> unsigned {
            return c >= '0' && c <= '9'   ? unsigned(c - '0')
                   : c >= 'a' && c <= 'f' ? unsigned(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? unsigned(c - 'A' + 10)
                                          : 0;
        };
        h[1036 + k++] = static_cast<std::byte>((hex(uuid[i]) << 4) | hex(uuid[i + 1]));
        i += 2;
    }
    std::memcpy(h.data() + page - 10, "SWAPSPACE2", 10);
    return h;
}

bool is_uuid(std::string_view s) {
    std::size_t digits = 0;
    for (char c : s) {
        if (c == '-') {
            continue;
        }
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
        ++digits;
    }
    return digits == 32;
}

}  // namespace

image::fs_type fs_type_of(const partclone_header& h, std::span<const std::byte> first) {
    const std::string& fs = h.fs;
    if (fs == "EXTFS" || fs == "EXT2" || fs == "EXT3" || fs == "EXT4") {
        return ext_flavour(first);
    }
    if (fs == "FAT12") {
        return image::fs_type::fat12;
    }
    if (fs == "FAT16") {
        return image::fs_type::fat16;
    }
    if (fs == "FAT32") {
        return image::fs_type::fat32;
    }
    if (fs == "FAT") {
        if (text_at(first, 82, "FAT32   ")) {
            return image::fs_type::fat32;
        }
        return text_at(first, 54, "FAT12   ") ? image::fs_type::fat12 : image::fs_type::fat16;
    }
    if (fs == "NTFS") {
        return image::fs_type::ntfs;
    }
    return image::fs_type::raw;  // "raw" (partclone.imager/dd) and what the format lacks
}

// ---- partclone_source ----

result<std::unique_ptr<partclone_source>> partclone_source::open(const fog_stream& stream,
                                                                 std::string name,
                                                                 std::uint64_t partition_size_bytes,
                                                                 std::uint64_t minimum_size_bytes) {
    std::unique_ptr<partclone_source> s(new partclone_source());
    auto pieces = piece_stream::open(stream.pieces);
    if (!pieces) {
        return pieces.err();
    }
    auto decoded = decoded_stream::open(std::move(*pieces));
    if (!decoded) {
        return decoded.err();
    }
    s->_decoded = std::move(*decoded);
    auto reader = partclone_reader::open(*s->_decoded, name);
    if (!reader) {
        return reader.err();
    }
    s->_reader.emplace(std::move(*reader));
    const partclone_header& h = s->_reader->header();
    const block_bitmap& bm = s->_reader->bitmap();
    if (partition_size_bytes == 0) {
        partition_size_bytes = h.device_size_bytes;
    }
    if (h.device_size_bytes > partition_size_bytes) {
        return error::format(errc::malformed, 0,
                             "{}: holds a {} of {} bytes, larger than its partition ({} bytes)",
                             name, h.fs, h.device_size_bytes, partition_size_bytes);
    }
    image::extent_builder eb;
    const std::uint64_t bs = h.block_size_bytes;
    for (auto run = bm.next_run(0); run.count != 0; run = bm.next_run(run.first + run.count)) {
        SHOAL_RETURN_IF_ERROR(eb.add(run.first * bs, run.count * bs));
        if (eb.extents().size() > image::extent_count_max) {
            return error::format(errc::unsupported, 0,
                                 "{}: more than {} used extents: too fragmented to import", name,
                                 image::extent_count_max);
        }
    }
    // The first verified blocks: they tell ext2 from ext3 from ext4, and stay pending.
    auto first = s->_reader->next();
    if (!first) {
        return first.err();
    }
    s->_pending = *first;
    const bool at_zero = bm.block_count() > 0 && bm.test(0);
    const std::span<const std::byte> head = at_zero ? s->_pending : std::span<const std::byte>{};
    // NTFS keeps a copy of its boot sector in the sector after the volume's last one (the
    // partition's last sector), which no cluster covers, so partclone does not save it; a
    // volume without it fails ntfsfix and chkdsk. It is the boot sector's copy: add it.
    if (h.fs == "NTFS" && head.size() >= 512 && text_at(head, 3, "NTFS    ")) {
        const std::uint64_t sector = le16(head.data() + 0x0B);
        const std::uint64_t sectors = std::uint64_t{le32(head.data() + 0x28)} |
                                      (std::uint64_t{le32(head.data() + 0x2C)} << 32);
        const std::uint64_t at = sectors * sector;
        const std::uint64_t end_of_used = eb.extents().empty() ? 0
                                                               : eb.extents().back().offset_bytes +
                                                                     eb.extents().back().size_bytes;
        if (sector >= 512 && sector <= 4096 && sectors < (1ull << 48) && at >= end_of_used &&
            at + sector <= h.device_size_bytes && head.size() >= sector) {
            s->_tail.assign(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(sector));
            SHOAL_RETURN_IF_ERROR(eb.add(at, sector));
        }
    }
    s->_extents = std::move(eb.extents());
    image::source_info& info = s->_info;
    info.fs = fs_type_of(h, head);
    info.size_bytes = partition_size_bytes;
    info.fs_size_bytes = h.device_size_bytes;
    info.minimum_size_bytes =
        minimum_size_bytes != 0 ? std::max(minimum_size_bytes, h.device_size_bytes) : 0;
    info.block_size_bytes = h.block_size_bytes;
    if (image::fs_is_ext(info.fs)) {
        info.label = ext_label(head);
    }
    if (info.fs == image::fs_type::raw && h.fs != "raw") {
        info.label = "partclone " + h.fs;  // say what it was, since the format cannot
    }
    return s;
}

result<std::size_t> partclone_source::read(std::span<std::byte> out) {
    std::size_t done = 0;
    while (done < out.size()) {
        if (_pending.empty()) {
            auto next = _reader->next();
            if (!next) {
                return next.err();
            }
            if (next->empty()) {
                const std::size_t n = std::min(out.size() - done, _tail.size() - _tail_done);
                if (n > 0) {
                    std::memcpy(out.data() + done, _tail.data() + _tail_done, n);
                }
                _tail_done += n;
                done += n;
                break;
            }
            _pending = *next;
        }
        const std::size_t n = std::min(out.size() - done, _pending.size());
        std::memcpy(out.data() + done, _pending.data(), n);
        _pending = _pending.subspan(n);
        done += n;
    }
    return done;
}

// ---- the import ----

namespace {

image::image_kind kind_of(fog_image_kind k) {
    switch (k) {
    case fog_image_kind::resizable: return image::image_kind::single_disk_resizable;
    case fog_image_kind::multiple_partitions: return image::image_kind::multi_partition_single_disk;
    case fog_image_kind::all_disks: return image::image_kind::multi_partition_all_disks;
    case fog_image_kind::raw: return image::image_kind::raw;
    }
    return image::image_kind::multi_partition_single_disk;
}

// FOG does not record a disk's size except for all-disks images (dN.size): a gpt dump's
// last usable LBA gives it (the backup GPT takes the 33 sectors after it), a dos disk is
// taken to end where its last partition ends.
std::uint64_t disk_size_of(const fog_disk& d) {
    if (d.size_bytes) {
        return *d.size_bytes;
    }
    const std::uint64_t ss = d.table.sector_size_bytes;
    if (d.table.label == "gpt" && d.table.last_lba != 0) {
        return (d.table.last_lba + 34) * ss;
    }
    std::uint64_t end = 0;
    for (const partition_entry& p : d.table.partitions) {
        end = std::max(end, p.start_sector + p.size_sectors);
    }
    return end * ss;
}

std::string describe_stream(std::string_view base, const partclone_source& s,
                            const fog_stream& stream) {
    return fmt::format("{} ({} {}, {}, {} piece{})", base, s.header().fs,
                       image::fs_name(s.describe().fs), compression_name(s.kind()),
                       stream.pieces.size(), stream.pieces.size() == 1 ? "" : "s");
}

// Walks the image: plans it (builder null) or builds it. Sources are opened one at a
// time, so memory holds one decompressor and one bitmap whatever the partition count.
status walk(const fog_image& fog, image::image_builder* builder, import_plan& plan) {
    plan.kind = kind_of(fog.kind);
    if (fog.kind == fog_image_kind::raw) {
        auto src = partclone_source::open(fog.raw, fog.dir + "/" + fog.raw_name, 0, 0);
        if (!src) {
            return src.err();
        }
        const partclone_header& h = (*src)->header();
        // The disk's own table, from its first bytes (a raw image holds every block, so
        // the first verified span is the start of the disk).
        image::partition_table table;
        if ((*src)->first_bytes_at_zero()) {
            auto t = image::parse_partition_table((*src)->first_bytes(), h.device_size_bytes,
                                                  fog.raw_name);
            if (t) {
                table = std::move(*t);
            } else {
                plan.notes.push_back(
                    fmt::format("{}: its partition table is not one shoal reads "
                                "({}): kept as raw bytes only",
                                fog.raw_name, t.err().describe()));
            }
        }
        plan.regions.push_back({1, 0, 0, h.device_size_bytes,
                                describe_stream(fog.raw_name, **src, fog.raw),
                                (*src)->used_bytes()});
        plan.used_bytes += (*src)->used_bytes();
        if (builder != nullptr) {
            SHOAL_RETURN_IF_ERROR(
                builder->begin_disk(1, h.device_size_bytes, std::move(table), fog.dir));
            SHOAL_RETURN_IF_ERROR(builder->add_region(0, 0, **src));
        }
        return ok();
    }
    for (const fog_disk& disk : fog.disks) {
        const std::string d = fmt::format("d{}", disk.number);
        const std::uint64_t ss = disk.table.sector_size_bytes;
        const std::uint64_t disk_size = disk_size_of(disk);
        auto table = image::parse_sfdisk_dump(disk.table_text, disk_size, disk.table_file);
        if (!table) {
            return table.err();
        }
        // The head: the boot code and whatever sits before the first partition (GRUB's
        // core). FOG saved it as dN.mbr (dos) or dN.grub.mbr (gpt), with the table of the
        // moment in it: the table's own bytes are laid over it, so the head agrees with the
        // table this image restores (for resizable images dN.mbr holds the shrunk one).
        std::uint64_t first_start = disk_size;
        for (const partition_entry& p : disk.table.partitions) {
            first_start = std::min(first_start, p.start_sector * ss);
        }
        std::vector<std::byte> head;
        if (disk.table.label == "dos") {
            head = disk.mbr;
        } else if (!disk.grub_mbr.empty()) {
            head = disk.grub_mbr;
        } else {
            head.assign(disk.mbr.begin(), disk.mbr.begin() + 512);  // the protective MBR
        }
        if (head.size() > first_start) {
            head.resize(first_start);
        }
        // The table's sector 0 as the disk had it: libfdisk wrote it with empty boot code.
        for (image::raw_bytes& r : table->raw) {
            if (r.offset_bytes == 0 && r.bytes.size() >= 440 && head.size() >= 440) {
                std::memcpy(r.bytes.data(), head.data(), 440);
            }
        }
        for (const image::raw_bytes& r : table->raw) {
            // In sector 0 only the disk id, the entries and the signature (bytes 440..511):
            // the boot code before them is the disk's, not the table's.
            const std::size_t from =
                r.offset_bytes == 0 ? std::min<std::size_t>(440, r.bytes.size()) : 0;
            const std::uint64_t at = r.offset_bytes + from;
            if (at >= head.size()) {
                continue;
            }
            const std::size_t n = std::min<std::size_t>(r.bytes.size() - from, head.size() - at);
            std::memcpy(head.data() + at, r.bytes.data() + from, n);
        }
        if (builder != nullptr) {
            SHOAL_RETURN_IF_ERROR(
                builder->begin_disk(disk.number, disk_size, std::move(*table), fog.dir + "/" + d));
        }
        if (!head.empty()) {
            image::source_info info;
            info.fs = image::fs_type::raw;
            info.size_bytes = head.size();
            info.label = disk.table.label == "dos" ? d + ".mbr" : d + ".grub.mbr";
            plan.regions.push_back({disk.number, 0, 0, head.size(),
                                    disk.table.label == "dos" || !disk.grub_mbr.empty()
                                        ? info.label
                                        : d + ".mbr (protective MBR of the sgdisk backup)",
                                    head.size()});
            plan.used_bytes += head.size();
            if (builder != nullptr) {
                image::memory_source src(head, info);
                SHOAL_RETURN_IF_ERROR(builder->add_region(0, 0, src));
            }
        }
        // Partitions in the order they lie on the disk.
        std::vector<const fog_partition*> parts;
        for (const fog_partition& p : disk.partitions) {
            parts.push_back(&p);
        }
        std::sort(parts.begin(), parts.end(), [&](const fog_partition* a, const fog_partition* b) {
            return disk.table.find(a->number)->start_sector <
                   disk.table.find(b->number)->start_sector;
        });
        for (const fog_partition* p : parts) {
            const partition_entry& e = *disk.table.find(p->number);
            const std::uint64_t start = e.start_sector * ss;
            const std::uint64_t size = e.size_sectors * ss;
            const std::string base = fmt::format("{}p{}", d, p->number);
            switch (p->content) {
            case fog_content::image: {
                std::uint64_t minimum = 0;
                if (p->fixed_size) {
                    minimum = size;
                } else if (p->minimum_size_sectors != 0) {
                    minimum = p->minimum_size_sectors * ss;
                }
                auto src =
                    partclone_source::open(p->stream, fog.dir + "/" + base + ".img", size, minimum);
                if (!src) {
                    return src.err();
                }
                plan.regions.push_back({disk.number, p->number, start, size,
                                        describe_stream(base + ".img", **src, p->stream),
                                        (*src)->used_bytes()});
                plan.used_bytes += (*src)->used_bytes();
                if (builder != nullptr) {
                    SHOAL_RETURN_IF_ERROR(builder->add_region(p->number, start, **src));
                }
                break;
            }
            case fog_content::swap: {
                if (!is_uuid(p->swap_uuid) || size < 2 * 4096) {
                    plan.notes.push_back(fmt::format(
                        "{}: swap without a usable UUID: restored empty, run mkswap", base));
                    break;
                }
                const std::vector<std::byte> page = swap_header(size, p->swap_uuid);
                image::source_info info;
                info.fs = image::fs_type::swap;
                info.size_bytes = size;
                info.block_size_bytes = 4096;
                plan.regions.push_back(
                    {disk.number, p->number, start, size,
                     fmt::format("swap, UUID {} (header made as mkswap does)", p->swap_uuid),
                     page.size()});
                plan.used_bytes += page.size();
                if (builder != nullptr) {
                    image::memory_source src(page, info);
                    SHOAL_RETURN_IF_ERROR(builder->add_region(p->number, start, src));
                }
                break;
            }
            case fog_content::extended: break;  // the table recreates it and its EBRs
            case fog_content::none:
                plan.notes.push_back(fmt::format(
                    "{}: FOG did not capture partition {} (no {}.img): it is restored empty", d,
                    p->number, base));
                break;
            }
        }
    }
    return ok();
}

}  // namespace

result<import_plan> plan_fog_import(const fog_image& fog) {
    import_plan plan;
    SHOAL_RETURN_IF_ERROR(walk(fog, nullptr, plan));
    return plan;
}

result<image::manifest> import_fog_image(image::chunk_store& store, const fog_image& fog,
                                         std::string name, image::build_options options) {
    if (options.description.empty()) {
        options.description =
            fmt::format("imported from FOG image {} ({})", fog.dir, fog_image_kind_name(fog.kind));
    }
    auto builder =
        image::image_builder::create(store, std::move(name), kind_of(fog.kind), std::move(options));
    if (!builder) {
        return builder.err();
    }
    import_plan plan;
    SHOAL_RETURN_IF_ERROR(walk(fog, builder->get(), plan));
    return (*builder)->publish();
}

}  // namespace shoal::fog
