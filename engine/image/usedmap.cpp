#include "image/usedmap.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <blkid/blkid.h>
#include <ext2fs/ext2fs.h>

namespace shoal::image {

// In fs_ntfs.cpp: libntfs-3g's headers do not mix well with the others.
result<used_map> read_ntfs_map(int fd, std::uint64_t offset_bytes, std::uint64_t size_bytes,
                               const std::string& name);

namespace {

struct probe_result {
    std::string type;
    std::string label;
    std::string uuid;
};

result<probe_result> probe(int fd, std::uint64_t offset, std::uint64_t size,
                           const std::string& name) {
    blkid_probe pr = blkid_new_probe();
    if (pr == nullptr) {
        return error(errc::io, "libblkid: out of memory");
    }
    probe_result out;
    if (blkid_probe_set_device(pr, fd, static_cast<blkid_loff_t>(offset),
                               static_cast<blkid_loff_t>(size)) != 0) {
        blkid_free_probe(pr);
        return error::format(errc::io, errno, "{}: libblkid cannot probe it", name);
    }
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(
        pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_VERSION);
    blkid_probe_enable_partitions(pr, 0);
    const int rc = blkid_do_safeprobe(pr);
    if (rc == 0) {
        const char* v = nullptr;
        if (blkid_probe_lookup_value(pr, "TYPE", &v, nullptr) == 0) {
            out.type = v;
        }
        if (blkid_probe_lookup_value(pr, "LABEL", &v, nullptr) == 0) {
            out.label = v;
        }
        if (blkid_probe_lookup_value(pr, "UUID", &v, nullptr) == 0) {
            out.uuid = v;
        }
    }
    blkid_free_probe(pr);
    return out;
}

std::string label_of(const probe_result& p) {
    if (p.label.empty()) {
        return p.uuid.empty() ? "" : "UUID=" + p.uuid;
    }
    return p.uuid.empty() ? p.label : p.label + " UUID=" + p.uuid;
}

used_map raw_map(std::uint64_t size) {
    used_map m;
    m.info.fs = fs_type::raw;
    m.info.size_bytes = size;
    m.info.fs_size_bytes = size;
    m.info.minimum_size_bytes = size;
    m.info.block_size_bytes = 512;
    if (size > 0) {
        m.extents.push_back({0, size});
    }
    return m;
}

result<used_map> read_ext_map(const std::string& path, std::uint64_t offset, std::uint64_t size,
                              fs_type fs, const std::string& name) {
    ext2_filsys efs = nullptr;
    const std::string io_options = fmt::format("offset={}", offset);
    errcode_t rc = ext2fs_open2(path.c_str(), io_options.c_str(), EXT2_FLAG_64BITS, 0, 0,
                                unix_io_manager, &efs);
    if (rc != 0) {
        return error::format(errc::malformed, 0,
                             "{}: libext2fs cannot open the {} filesystem ({}); "
                             "run e2fsck on it first",
                             name, fs_name(fs), error_message(rc));
    }
    auto close = [&] { ext2fs_close_free(&efs); };
    rc = ext2fs_read_block_bitmap(efs);
    if (rc != 0) {
        close();
        return error::format(errc::malformed, 0,
                             "{}: the block bitmap cannot be read ({}); run e2fsck", name,
                             error_message(rc));
    }
    const std::uint64_t bs = EXT2_BLOCK_SIZE(efs->super);
    const blk64_t first = efs->super->s_first_data_block;
    const blk64_t count = ext2fs_blocks_count(efs->super);
    used_map m;
    m.info.fs = fs;
    m.info.size_bytes = size;
    m.info.fs_size_bytes = count * bs;
    m.info.block_size_bytes = static_cast<std::uint32_t>(bs);
    if (m.info.fs_size_bytes > size) {
        close();
        return error::format(errc::malformed, 0,
                             "{}: the {} filesystem says {} bytes, the partition "
                             "holds {}",
                             name, fs_name(fs), m.info.fs_size_bytes, size);
    }
    extent_builder b;
    // Before the first data block (the boot block of 1 KiB-block filesystems).
    if (first > 0) {
        (void)b.add(0, first * bs);
    }
    ext2fs_block_bitmap bmap = efs->block_map;
    blk64_t at = first;
    const blk64_t last = count - 1;
    while (at <= last) {
        blk64_t set = 0;
        if (ext2fs_find_first_set_block_bitmap2(bmap, at, last, &set) != 0) {
            break;
        }
        blk64_t clear = 0;
        blk64_t end = last + 1;
        if (ext2fs_find_first_zero_block_bitmap2(bmap, set, last, &clear) == 0) {
            end = clear;
        }
        (void)b.add(set * bs, (end - set) * bs);
        at = end;
    }
    m.extents = std::move(b.extents());
    close();
    return m;
}

}  // namespace

result<used_map> read_used_map(int fd, const std::string& path, std::uint64_t offset_bytes,
                               std::uint64_t size_bytes, bool force_raw) {
    const std::string name = fmt::format("{} (partition at byte {})", path, offset_bytes);
    if (force_raw) {
        return raw_map(size_bytes);
    }
    auto p = probe(fd, offset_bytes, size_bytes, name);
    if (!p) {
        return p.err();
    }
    result<used_map> m = raw_map(size_bytes);
    if (p->type == "ext2" || p->type == "ext3" || p->type == "ext4") {
        const fs_type fs = p->type == "ext2"   ? fs_type::ext2
                           : p->type == "ext3" ? fs_type::ext3
                                               : fs_type::ext4;
        m = read_ext_map(path, offset_bytes, size_bytes, fs, name);
    } else if (p->type == "ntfs") {
        m = read_ntfs_map(fd, offset_bytes, size_bytes, name);
    } else if (p->type == "vfat") {
        m = read_fat_map(fd, offset_bytes, size_bytes, name);
    } else if (p->type == "swap") {
        // Only the header page: the rest is scratch space nobody needs back.
        used_map s = raw_map(size_bytes);
        s.info.fs = fs_type::swap;
        s.info.block_size_bytes = 4096;
        s.extents = {{0, std::min<std::uint64_t>(4096, size_bytes)}};
        m = std::move(s);
    }
    if (m) {
        m->info.label = label_of(*p);
    }
    return m;
}

result<used_map> read_fat_map(int fd, std::uint64_t offset_bytes, std::uint64_t size_bytes,
                              const std::string& name) {
    auto pread_exact = [&](void* out, std::size_t n, std::uint64_t at) -> status {
        std::size_t done = 0;
        while (done < n) {
            const ssize_t r = ::pread(fd, static_cast<char*>(out) + done, n - done,
                                      static_cast<off_t>(offset_bytes + at + done));
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                return error::format(r < 0 ? errc::io : errc::truncated, r < 0 ? errno : 0,
                                     "{}: reading the FAT at {}", name, at);
            }
            done += static_cast<std::size_t>(r);
        }
        return ok();
    };
    std::uint8_t bs[512];
    if (size_bytes < sizeof bs) {
        return error::format(errc::malformed, 0, "{}: too small for a FAT boot sector", name);
    }
    SHOAL_RETURN_IF_ERROR(pread_exact(bs, sizeof bs, 0));
    auto u16 = [&](int at) { return static_cast<std::uint32_t>(bs[at] | bs[at + 1] << 8); };
    auto u32 = [&](int at) { return u16(at) | u16(at + 2) << 16; };
    const std::uint32_t bps = u16(11);
    const std::uint32_t spc = bs[13];
    const std::uint32_t reserved = u16(14);
    const std::uint32_t fats = bs[16];
    const std::uint32_t root_entries = u16(17);
    const std::uint32_t total = u16(19) != 0 ? u16(19) : u32(32);
    const std::uint32_t fat_sectors = u16(22) != 0 ? u16(22) : u32(36);
    auto bad = [&](std::string_view what) {
        return error::format(errc::malformed, 0, "{}: FAT boot sector: {}; run fsck.vfat", name,
                             what);
    };
    if (bps != 512 && bps != 1024 && bps != 2048 && bps != 4096) {
        return bad("bytes per sector not 512..4096");
    }
    if (spc == 0 || (spc & (spc - 1)) != 0) {
        return bad("sectors per cluster not a power of two");
    }
    if (reserved == 0 || fats == 0 || fats > 4 || fat_sectors == 0) {
        return bad("no reserved sectors or no FAT");
    }
    const std::uint64_t root_sectors =
        (static_cast<std::uint64_t>(root_entries) * 32 + bps - 1) / bps;
    const std::uint64_t data_start =
        reserved + static_cast<std::uint64_t>(fats) * fat_sectors + root_sectors;
    if (data_start >= total || static_cast<std::uint64_t>(total) * bps > size_bytes) {
        return bad("its sizes do not fit the partition");
    }
    const std::uint64_t clusters = (total - data_start) / spc;
    const fs_type fs = clusters < 4085    ? fs_type::fat12
                       : clusters < 65525 ? fs_type::fat16
                                          : fs_type::fat32;
    const std::uint64_t entry_bits = fs == fs_type::fat12 ? 12 : fs == fs_type::fat16 ? 16 : 32;
    const std::uint64_t fat_bytes = static_cast<std::uint64_t>(fat_sectors) * bps;
    if ((clusters + 2) * entry_bits > fat_bytes * 8) {
        return bad("the FAT is too small for its clusters");
    }
    std::vector<std::uint8_t> fat(static_cast<std::size_t>((clusters + 2) * entry_bits / 8 + 2));
    fat.resize(std::min<std::size_t>(fat.size(), fat_bytes));
    SHOAL_RETURN_IF_ERROR(
        pread_exact(fat.data(), fat.size(), static_cast<std::uint64_t>(reserved) * bps));
    auto entry = [&](std::uint64_t n) -> std::uint32_t {
        if (fs == fs_type::fat12) {
            const std::size_t at = static_cast<std::size_t>(n + n / 2);
            const std::uint32_t v = fat[at] | static_cast<std::uint32_t>(fat[at + 1]) << 8;
            return n % 2 == 0 ? v & 0xFFF : v >> 4;
        }
        if (fs == fs_type::fat16) {
            const std::size_t at = static_cast<std::size_t>(n * 2);
            return fat[at] | static_cast<std::uint32_t>(fat[at + 1]) << 8;
        }
        const std::size_t at = static_cast<std::size_t>(n * 4);
        return (fat[at] | static_cast<std::uint32_t>(fat[at + 1]) << 8 |
                static_cast<std::uint32_t>(fat[at + 2]) << 16 |
                static_cast<std::uint32_t>(fat[at + 3]) << 24) &
               0x0FFFFFFF;
    };
    const std::uint32_t bad_cluster = fs == fs_type::fat12   ? 0xFF7
                                      : fs == fs_type::fat16 ? 0xFFF7
                                                             : 0x0FFFFFF7;
    used_map m;
    m.info.fs = fs;
    m.info.size_bytes = size_bytes;
    m.info.fs_size_bytes = static_cast<std::uint64_t>(total) * bps;
    m.info.minimum_size_bytes = m.info.fs_size_bytes;  // FAT keeps its size
    m.info.block_size_bytes = bps;
    extent_builder b;
    // Boot sector, reserved sectors, every FAT copy and the FAT12/16 root directory.
    (void)b.add(0, data_start * bps);
    const std::uint64_t cluster_bytes = static_cast<std::uint64_t>(spc) * bps;
    for (std::uint64_t n = 2; n < clusters + 2; ++n) {
        const std::uint32_t v = entry(n);
        if (v != 0 && v != bad_cluster) {
            (void)b.add(data_start * bps + (n - 2) * cluster_bytes, cluster_bytes);
        }
    }
    m.extents = std::move(b.extents());
    return m;
}

}  // namespace shoal::image
