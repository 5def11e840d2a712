#include "fog/fog_dir.h"

#include "common/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>

namespace shoal::fog {

std::string_view fog_image_kind_name(fog_image_kind kind) noexcept {
    switch (kind) {
    case fog_image_kind::resizable: return "single disk, resizable";
    case fog_image_kind::multiple_partitions: return "multiple partitions, single disk";
    case fog_image_kind::all_disks: return "multiple partitions, all disks";
    case fog_image_kind::raw: return "raw";
    }
    return "unknown";
}

std::string_view fog_content_name(fog_content c) noexcept {
    switch (c) {
    case fog_content::image: return "image";
    case fog_content::swap: return "swap";
    case fog_content::extended: return "extended";
    case fog_content::none: return "not captured";
    }
    return "unknown";
}

namespace {

// A FOG directory holds a handful of files per partition; more is not a FOG image.
constexpr std::size_t dir_entry_count_max = 100000;
constexpr std::size_t piece_count_max = 10000;  // split -a 3: .000 to .999, with room
// dN.mbr is at most 2048 sectors (FOG caps it at 1 MiB) plus an sgdisk backup's entries.
constexpr std::size_t mbr_size_bytes_max = (1u << 20) + 64 * 1024;

result<std::set<std::string>> list_dir(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                             "cannot open FOG image directory {}", dir);
    }
    std::set<std::string> names;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        if (n == "." || n == "..") {
            continue;
        }
        if (names.size() == dir_entry_count_max) {
            ::closedir(d);
            return error::format(errc::malformed, 0, "{}: more than {} files: not a FOG image", dir,
                                 dir_entry_count_max);
        }
        names.emplace(n);
    }
    ::closedir(d);
    return names;
}

std::string join(const std::string& dir, std::string_view name) {
    return dir.empty() || dir.back() == '/' ? dir + std::string(name)
                                            : dir + "/" + std::string(name);
}

result<std::uint64_t> regular_file_size(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return error::format(errno == ENOENT ? errc::not_found : errc::io, errno, "stat {}", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return error::format(errc::invalid_argument, 0, "{} is not a regular file", path);
    }
    return static_cast<std::uint64_t>(st.st_size);
}


result<std::string> read_text(const std::string& path) {
    auto b = read_file(path, sidecar_size_bytes_max);
    if (!b) {
        return b.err();
    }
    return std::string(reinterpret_cast<const char*>(b->data()), b->size());
}

// "123" -> 123 (digits only, no sign, no leading '+').
bool parse_number(std::string_view s, std::uint32_t& out) {
    if (s.empty() || s.size() > 6 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    std::from_chars(s.data(), s.data() + s.size(), out);
    return true;
}

// "d12" + rest: the disk number and what follows it.
bool split_disk(std::string_view name, std::uint32_t& disk, std::string_view& rest) {
    if (name.size() < 2 || name[0] != 'd') {
        return false;
    }
    std::size_t i = 1;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
        ++i;
    }
    if (!parse_number(name.substr(1, i - 1), disk) || disk == 0) {
        return false;
    }
    rest = name.substr(i);
    return true;
}

// "dNpM.img", "dNpM.img.000", … -> N, M.
bool partition_image_name(std::string_view name, std::uint32_t& disk, std::uint32_t& part) {
    std::string_view rest;
    if (!split_disk(name, disk, rest) || rest.empty() || rest[0] != 'p') {
        return false;
    }
    const std::size_t dot = rest.find('.');
    if (dot == std::string_view::npos || !parse_number(rest.substr(1, dot - 1), part) ||
        part == 0) {
        return false;
    }
    const std::string_view tail = rest.substr(dot);
    return tail == ".img" ||
           (tail.size() == 8 && tail.substr(0, 5) == ".img." &&
            std::all_of(tail.begin() + 5, tail.end(), [](char c) { return c >= '0' && c <= '9'; }));
}

bool is_piece_suffix(std::string_view s) {
    return s.size() >= 3 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string piece_name(const std::string& base, std::size_t index) {
    return fmt::format("{}.{:03}", base, index);
}

result<fog_stream> find_pieces_in(const std::string& dir, const std::set<std::string>& names,
                                  const std::string& base) {
    fog_stream s;
    const bool whole = names.count(base) != 0;
    const bool first = names.count(piece_name(base, 0)) != 0;
    // Every "base.NNN" present, to find gaps and strays.
    std::vector<std::size_t> numbered;
    for (auto it = names.lower_bound(base + "."); it != names.end(); ++it) {
        const std::string_view n = *it;
        if (n.substr(0, base.size() + 1) != base + ".") {
            break;
        }
        const std::string_view suffix = n.substr(base.size() + 1);
        std::uint32_t k = 0;
        if (is_piece_suffix(suffix) && parse_number(suffix, k)) {
            numbered.push_back(k);
        }
    }
    std::sort(numbered.begin(), numbered.end());
    if (whole && first) {
        return error::format(errc::malformed, 0,
                             "{}: both {} and {} exist; FOG renames .000 to the plain name when a "
                             "capture completes, so one of them is left over from another capture",
                             dir, base, piece_name(base, 0));
    }
    if (!whole && !first) {
        if (!numbered.empty()) {
            return error::format(errc::not_found, 0,
                                 "{}: {} is missing (found {} but not the first piece)", dir,
                                 piece_name(base, 0), piece_name(base, numbered.front()));
        }
        return s;
    }
    if (numbered.size() > piece_count_max) {
        return error::format(errc::malformed, 0, "{}: more than {} pieces of {}", dir,
                             piece_count_max, base);
    }
    // Pieces: base (or base.000), then base.001, base.002, … without a gap.
    s.pieces.push_back(join(dir, whole ? base : piece_name(base, 0)));
    std::size_t expect = 1;
    for (std::size_t k : numbered) {
        if (k == 0) {
            continue;
        }
        if (k != expect) {
            return error::format(errc::not_found, 0,
                                 "{}: piece {} is missing (the pieces go on with {})", dir,
                                 piece_name(base, expect), piece_name(base, k));
        }
        s.pieces.push_back(join(dir, piece_name(base, k)));
        ++expect;
    }
    std::uint64_t first_size = 0;
    for (std::size_t i = 0; i < s.pieces.size(); ++i) {
        auto size = regular_file_size(s.pieces[i]);
        if (!size) {
            return size.err();
        }
        if (i == 0) {
            first_size = *size;
        } else if (i + 1 < s.pieces.size() && *size != first_size) {
            return error::format(errc::truncated, 0,
                                 "{} is {} bytes but the first piece is {}: split writes equal "
                                 "pieces, so it was cut short",
                                 s.pieces[i], *size, first_size);
        }
        if (i + 1 == s.pieces.size() && i > 0 && *size > first_size) {
            return error::format(errc::malformed, 0,
                                 "{} is {} bytes, longer than the first piece ({}): not pieces of "
                                 "one split",
                                 s.pieces[i], *size, first_size);
        }
        s.size_bytes += *size;
    }
    return s;
}

bool is_extended_type(const partition_table& t, const partition_entry& p) {
    return t.label == "dos" && (p.type == "5" || p.type == "f" || p.type == "85");
}

// The files FOG writes that name a disk: dN.<suffix>.
const std::set<std::string_view>& disk_sidecar_suffixes() {
    static const std::set<std::string_view> s = {
        ".mbr",
        ".grub.mbr",
        ".has_grub",
        ".partitions",
        ".minimum.partitions",
        ".original.partitions",
        ".shrunken.partitions",
        ".fixed_size_partitions",
        ".original.fstypes",
        ".original.swapuuids",
        ".size",
    };
    return s;
}

bool has_lvm(const std::set<std::string>& names, const std::string& base) {
    return names.count(base + ".lvm") != 0;
}

status read_disk(const std::string& dir, const std::set<std::string>& names, fog_disk& disk) {
    const std::string d = fmt::format("d{}", disk.number);
    auto has = [&](std::string_view suffix) { return names.count(d + std::string(suffix)) != 0; };
    auto path = [&](std::string_view suffix) { return join(dir, d + std::string(suffix)); };

    // The partition table as the disk was: dN.partitions (dN.original.partitions in older FOG).
    std::string table_name = has(".partitions") ? ".partitions" : ".original.partitions";
    if (!has(table_name)) {
        return error::format(errc::not_found, 0,
                             "{}: {}.partitions is missing: the partition table of disk {} (an "
                             "`sfdisk -d` dump) is needed to import it",
                             dir, d, disk.number);
    }
    auto text = read_text(path(table_name));
    if (!text) {
        return text.err();
    }
    auto table = parse_sfdisk_dump(*text, d + table_name);
    if (!table) {
        return table.err();
    }
    disk.table = std::move(*table);
    disk.table_text = std::move(*text);
    disk.table_file = d + table_name;
    if (has(".minimum.partitions")) {
        auto mt = read_text(path(".minimum.partitions"));
        if (!mt) {
            return mt.err();
        }
        auto minimum = parse_sfdisk_dump(*mt, d + ".minimum.partitions");
        if (!minimum) {
            return minimum.err();
        }
        if (minimum->label != disk.table.label) {
            return error::format(errc::malformed, 0,
                                 "{}: {}.minimum.partitions is {} but {}{} is {}", dir, d,
                                 minimum->label, d, table_name, disk.table.label);
        }
        disk.minimum = std::move(*minimum);
    }
    if (has(".mbr")) {
        auto mbr = read_file(path(".mbr"), mbr_size_bytes_max);
        if (!mbr) {
            return mbr.err();
        }
        if (mbr->size() < 512) {
            return error::format(errc::truncated, 0,
                                 "{}/{}.mbr is {} bytes: FOG saves at least one 512-byte sector",
                                 dir, d, mbr->size());
        }
        if (std::to_integer<unsigned>((*mbr)[510]) != 0x55 ||
            std::to_integer<unsigned>((*mbr)[511]) != 0xAA) {
            return error::format(errc::malformed, 0,
                                 "{}/{}.mbr has no 55 AA boot signature at byte 510: not an MBR",
                                 dir, d);
        }
        // `sgdisk -b` backups start with the protective MBR and then the GPT header.
        disk.mbr_is_sgdisk_backup =
            mbr->size() >= 1024 &&
            std::string_view(reinterpret_cast<const char*>(mbr->data()) + 512, 8) == "EFI PART";
        if (disk.table.label == "gpt" && !disk.mbr_is_sgdisk_backup) {
            return error::format(errc::malformed, 0,
                                 "{}/{}.mbr of a gpt disk is not an sgdisk backup (no \"EFI PART\" "
                                 "at byte 512)",
                                 dir, d);
        }
        disk.mbr = std::move(*mbr);
    } else {
        return error::format(errc::not_found, 0,
                             "{}: {}.mbr is missing: FOG saves the boot sectors of every disk", dir,
                             d);
    }
    if (has(".grub.mbr")) {
        auto g = read_file(path(".grub.mbr"), mbr_size_bytes_max);
        if (!g) {
            return g.err();
        }
        disk.grub_mbr = std::move(*g);
    }
    if (has(".size")) {
        auto t = read_text(path(".size"));
        if (!t) {
            return t.err();
        }
        auto size = parse_disk_size(*t, disk.number, d + ".size");
        if (!size) {
            return size.err();
        }
        disk.size_bytes = *size;
    }
    std::vector<std::uint32_t> fixed;
    if (has(".fixed_size_partitions")) {
        auto t = read_text(path(".fixed_size_partitions"));
        if (!t) {
            return t.err();
        }
        auto f = parse_fixed_size_partitions(*t, d + ".fixed_size_partitions");
        if (!f) {
            return f.err();
        }
        fixed = std::move(*f);
    }
    std::vector<fstype_entry> fstypes;
    if (has(".original.fstypes")) {
        auto t = read_text(path(".original.fstypes"));
        if (!t) {
            return t.err();
        }
        auto f = parse_original_fstypes(*t, d + ".original.fstypes");
        if (!f) {
            return f.err();
        }
        fstypes = std::move(*f);
    }
    std::vector<swap_uuid_entry> swaps;
    if (has(".original.swapuuids")) {
        auto t = read_text(path(".original.swapuuids"));
        if (!t) {
            return t.err();
        }
        auto s = parse_swap_uuids(*t, d + ".original.swapuuids");
        if (!s) {
            return s.err();
        }
        swaps = std::move(*s);
    }

    for (const partition_entry& e : disk.table.partitions) {
        fog_partition p;
        p.number = e.number;
        p.fixed_size = std::find(fixed.begin(), fixed.end(), e.number) != fixed.end();
        for (const fstype_entry& f : fstypes) {
            if (f.number == e.number) {
                p.fog_fstype = f.fstype;
            }
        }
        if (disk.minimum) {
            const partition_entry* m = disk.minimum->find(e.number);
            if (m == nullptr) {
                return error::format(errc::malformed, 0,
                                     "{}: partition {} is in {}{} but not in {}.minimum.partitions",
                                     dir, e.number, d, table_name, d);
            }
            p.minimum_size_sectors = m->size_sectors;
        }
        const std::string base = fmt::format("{}p{}", d, e.number);
        if (has_lvm(names, base)) {
            return error::format(errc::unsupported, 0,
                                 "{}: partition {} of disk {} was captured as LVM ({}.lvm): LVM "
                                 "images are not imported yet",
                                 dir, e.number, disk.number, base);
        }
        auto stream = find_pieces_in(dir, names, base + ".img");
        if (!stream) {
            return stream.err();
        }
        if (!stream->empty()) {
            if (is_extended_type(disk.table, e)) {
                // FOS before issue #150 saved the extended container's 1 KiB window; FOG
                // itself no longer writes it back, nor do we.
                p.content = fog_content::extended;
            } else {
                p.content = fog_content::image;
                p.stream = std::move(*stream);
            }
        } else if (is_extended_type(disk.table, e) || names.count(base + ".ebr") != 0) {
            p.content = fog_content::extended;
        } else {
            for (const swap_uuid_entry& s : swaps) {
                if (s.number == e.number) {
                    p.content = fog_content::swap;
                    p.swap_uuid = s.uuid;
                }
            }
        }
        disk.partitions.push_back(std::move(p));
    }
    return ok();
}

}  // namespace

result<fog_stream> find_pieces(const std::string& dir, const std::string& base) {
    auto names = list_dir(dir);
    if (!names) {
        return names.err();
    }
    return find_pieces_in(dir, *names, base);
}

result<fog_image> read_fog_image(const std::string& dir) {
    auto names_r = list_dir(dir);
    if (!names_r) {
        return names_r.err();
    }
    const std::set<std::string>& names = *names_r;
    fog_image img;
    img.dir = dir;
    // Disks: every N named by a dN sidecar or a dNpM.img.
    std::set<std::uint32_t> disk_numbers;
    std::map<std::uint32_t, std::set<std::uint32_t>> images;  // disk -> partitions with a stream
    for (const std::string& n : names) {
        std::uint32_t disk = 0;
        std::uint32_t part = 0;
        std::string_view rest;
        if (partition_image_name(n, disk, part)) {
            disk_numbers.insert(disk);
            images[disk].insert(part);
        } else if (split_disk(n, disk, rest) && disk_sidecar_suffixes().count(rest) != 0) {
            disk_numbers.insert(disk);
        }
    }
    if (disk_numbers.empty()) {
        // A raw image: FOG's "dd" type streams the whole disk through partclone.imager into
        // one file named after the image (plus .001… when split).
        std::set<std::string> bases;
        for (const std::string& n : names) {
            const std::size_t dot = n.rfind('.');
            if (dot != std::string::npos && is_piece_suffix(std::string_view(n).substr(dot + 1))) {
                bases.insert(n.substr(0, dot));
            } else {
                bases.insert(n);
            }
        }
        // Files that FOG or a person may leave beside a raw image.
        for (const char* other : {"md5sum", "sha512sum", ".DS_Store"}) {
            bases.erase(other);
        }
        if (names.count("sys.img.000") != 0 || names.count("rec.img.000") != 0) {
            return error::format(errc::unsupported, 0,
                                 "{}: sys.img/rec.img: a FOG 0.x Windows 7 image; these old "
                                 "layouts are not imported",
                                 dir);
        }
        if (bases.size() != 1) {
            return error::format(errc::not_found, 0,
                                 "{}: not a FOG image: no d1.partitions or dNpM.img, and {} files "
                                 "where a raw image has one stream",
                                 dir, bases.size());
        }
        img.kind = fog_image_kind::raw;
        img.raw_name = *bases.begin();
        auto s = find_pieces_in(dir, names, img.raw_name);
        if (!s) {
            return s.err();
        }
        img.raw = std::move(*s);
        return img;
    }
    for (std::uint32_t n : disk_numbers) {
        fog_disk disk;
        disk.number = n;
        SHOAL_RETURN_IF_ERROR(read_disk(dir, names, disk));
        // A stream for a partition the table does not have belongs to no partition.
        for (std::uint32_t part : images[n]) {
            if (disk.table.find(part) == nullptr) {
                return error::format(errc::malformed, 0,
                                     "{}: d{}p{}.img has no partition {} in d{}.partitions", dir, n,
                                     part, part, n);
            }
        }
        img.disks.push_back(std::move(disk));
    }
    const bool minimum = std::any_of(img.disks.begin(), img.disks.end(),
                                     [](const fog_disk& d) { return d.minimum.has_value(); });
    if (minimum) {
        img.kind = fog_image_kind::resizable;
    } else if (img.disks.size() > 1 ||
               std::any_of(img.disks.begin(), img.disks.end(),
                           [](const fog_disk& d) { return d.size_bytes.has_value(); })) {
        img.kind = fog_image_kind::all_disks;
    } else {
        img.kind = fog_image_kind::multiple_partitions;
    }
    return img;
}

}  // namespace shoal::fog
