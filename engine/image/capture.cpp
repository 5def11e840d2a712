#include "image/capture.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/log.h"
#include "image/disk_source.h"
#include "image/resize.h"
#include "image/table.h"
#include "image/usedmap.h"

namespace shoal::image {

namespace {

struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

// A shrunk source filesystem to grow back when the capture ends, however it ends.
struct pending_regrow {
    std::string path;
    fs_type fs;
    std::uint64_t offset;
    std::uint64_t partition_size;
    std::uint64_t fs_size;
};

}  // namespace

result<std::uint64_t> disk_size_of(int fd, const std::string& path) {
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        return error::format(errc::io, errno, "stat of {}", path);
    }
    if (S_ISBLK(st.st_mode)) {
        std::uint64_t size = 0;
        if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
            return error::format(errc::io, errno, "size of block device {}", path);
        }
        return size;
    }
    if (S_ISREG(st.st_mode)) {
        return static_cast<std::uint64_t>(st.st_size);
    }
    return error::format(errc::invalid_argument, 0, "{} is neither a block device nor a file",
                         path);
}

result<manifest> capture_image(chunk_sink& store, const std::string& name,
                               const capture_options& options) {
    if (options.disks.empty()) {
        return error(errc::invalid_argument, "no disk to capture (--disk)");
    }
    if (options.kind != image_kind::multi_partition_all_disks && options.disks.size() > 1) {
        return error::format(errc::invalid_argument, 0,
                             "a {} image holds one disk; use all-disks for {}",
                             kind_name(options.kind), options.disks.size());
    }
    // The total to expect, for progress: the used maps as they are now (a shrink moves
    // blocks but keeps their count).
    std::uint64_t expected_total = 0;
    if (options.on_progress) {
        for (const std::string& path : options.disks) {
            fd_guard f;
            f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            auto size =
                f.fd >= 0 ? disk_size_of(f.fd, path) : result<std::uint64_t>(error(errc::io, ""));
            if (!size) {
                break;  // the capture itself reports it
            }
            auto t = options.kind == image_kind::raw ? result<partition_table>(partition_table{})
                                                     : read_partition_table(f.fd, path);
            if (!t || t->entries.empty()) {
                expected_total += *size;
                continue;
            }
            for (const auto& e : t->entries) {
                if (e.container || (!options.partitions.empty() &&
                                    std::find(options.partitions.begin(), options.partitions.end(),
                                              e.number) == options.partitions.end())) {
                    continue;
                }
                if (auto map = read_used_map(f.fd, path, e.start_bytes, e.size_bytes); map) {
                    for (const auto& x : map->extents) {
                        expected_total += x.size_bytes;
                    }
                }
            }
        }
    }
    build_options build = options.build;
    if (options.on_progress) {
        build.on_progress = [&](std::uint64_t done) {
            options.on_progress(done, std::max(done, expected_total));
        };
    }
    auto builder = image_builder::create(store, name, options.kind, build);
    if (!builder) {
        return builder.err();
    }
    std::vector<pending_regrow> regrow;
    status st = ok();
    std::uint32_t index = 0;
    for (const std::string& path : options.disks) {
        ++index;
        fd_guard disk;
        // O_EXCL on a block device fails while it or one of its partitions is mounted.
        struct stat sst {};
        const bool is_block = ::stat(path.c_str(), &sst) == 0 && S_ISBLK(sst.st_mode);
        disk.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (is_block ? O_EXCL : 0));
        if (disk.fd < 0) {
            const int e = errno;
            st = e == EBUSY
                     ? error::format(errc::io, e, "{} is in use (mounted?): unmount it first", path)
                     : error::format(e == ENOENT ? errc::not_found : errc::io, e, "opening {}",
                                     path);
            break;
        }
        auto size = disk_size_of(disk.fd, path);
        if (!size) {
            st = size.err();
            break;
        }
        partition_table table;
        if (options.kind != image_kind::raw) {
            auto t = read_partition_table(disk.fd, path);
            if (!t) {
                st = t.err();
                break;
            }
            table = std::move(*t);
            if (table.entries.empty()) {
                // A filesystem on the whole disk: an NTFS or FAT boot sector carries the
                // 0x55AA signature libfdisk takes for an empty MBR.
                table = partition_table{};
            }
        }
        if (auto s = (*builder)->begin_disk(index, *size, table, path); !s) {
            st = s.err();
            break;
        }
        if (table.kind == table_kind::none) {
            // A raw image, or a filesystem on the whole disk (no partition table).
            auto map = read_used_map(disk.fd, path, 0, *size, options.kind == image_kind::raw);
            if (!map) {
                st = map.err();
                break;
            }
            auto src = disk_source::create(disk.fd, path, 0, std::move(*map));
            if (!src) {
                st = src.err();
                break;
            }
            st = (*builder)->add_region(0, 0, **src);
            if (!st) {
                break;
            }
            continue;
        }
        // The disk's head before its first partition: boot code (GRUB's core.img on MBR
        // disks) lives there.
        std::uint64_t first_start = *size;
        for (const auto& e : table.entries) {
            first_start = std::min(first_start, e.start_bytes);
        }
        if (first_start > 0) {
            auto src = disk_source::create(
                disk.fd, path, 0,
                used_map{{fs_type::raw, first_start, first_start, first_start, 512, ""},
                         {{0, first_start}}});
            if (!src) {
                st = src.err();
                break;
            }
            st = (*builder)->add_region(0, 0, **src);
            if (!st) {
                break;
            }
        }
        const bool resizable = options.kind == image_kind::single_disk_resizable;
        for (const table_entry& e : table.entries) {
            if (e.container || e.size_bytes == 0) {
                continue;
            }
            if (!options.partitions.empty() &&
                std::find(options.partitions.begin(), options.partitions.end(), e.number) ==
                    options.partitions.end()) {
                continue;
            }
            auto map = read_used_map(disk.fd, path, e.start_bytes, e.size_bytes);
            if (!map) {
                st = map.err();
                break;
            }
            if (resizable && options.shrink && fs_can_resize(map->info.fs)) {
                const std::uint64_t original_fs = map->info.fs_size_bytes;
                log::info("{}: shrinking partition {} ({}) to its minimum for a resizable image",
                          path, e.number, fs_name(map->info.fs));
                auto shrunk = shrink_fs(path, map->info.fs, e.start_bytes, e.size_bytes);
                if (!shrunk) {
                    st = shrunk.err();
                    break;
                }
                regrow.push_back({path, map->info.fs, e.start_bytes, e.size_bytes, original_fs});
                map = read_used_map(disk.fd, path, e.start_bytes, e.size_bytes);
                if (!map) {
                    st = map.err();
                    break;
                }
            }
            map->info.minimum_size_bytes = map->info.fs_size_bytes;
            log::info(
                "{}: partition {}: {} {}, {} of {} bytes used", path, e.number,
                fs_name(map->info.fs), map->info.label,
                [&] {
                    std::uint64_t n = 0;
                    for (const auto& x : map->extents) {
                        n += x.size_bytes;
                    }
                    return n;
                }(),
                e.size_bytes);
            auto src = disk_source::create(disk.fd, path, e.start_bytes, std::move(*map));
            if (!src) {
                st = src.err();
                break;
            }
            st = (*builder)->add_region(e.number, e.start_bytes, **src);
            if (!st) {
                break;
            }
        }
        if (!st) {
            break;
        }
    }
    // The source gets its filesystems' sizes back whatever happened.
    for (const auto& g : regrow) {
        if (auto s = resize_fs(g.path, g.fs, g.offset, g.partition_size, g.fs_size); !s) {
            log::err(
                "{}: growing the filesystem at {} back to {} bytes failed: {} — run "
                "resize2fs/ntfsresize "
                "on it by hand",
                g.path, g.offset, g.fs_size, s.err().describe());
            if (st) {
                st = s.err();
            }
        }
    }
    if (!st) {
        return st.err();
    }
    return (*builder)->publish();
}

}  // namespace shoal::image
