// Wiping a disk (or a disk image file) for the wipe_fast, wipe_normal and wipe_full tasks.
//   fast    the first and last 2 MiB: partition tables (MBR, both GPT copies) and the
//           signatures at the disk's ends (filesystem superblocks, RAID metadata)
//   normal  fast, plus the first and last 1 MiB of every partition the table named before
//           the wipe (filesystem superblocks and their backups at the partition's end)
//   full    every byte, in 4 MiB writes, with progress; cancellable
// Each writes zeros, then fdatasync()s; on a block device the kernel is told to forget the
// old partitions (BLKRRPART, best effort).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"

namespace shoal::agent {

enum class wipe_mode : std::uint8_t { fast, normal, full };

struct wipe_progress {
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;
};

struct wipe_options {
    wipe_mode mode = wipe_mode::fast;
    std::function<void(const wipe_progress&)> on_progress;  // from the wiping thread
    const std::atomic<bool>* cancel = nullptr;              // set: stop at the next write
};

struct wipe_report {
    std::uint64_t disk_size_bytes = 0;
    std::uint64_t bytes_written = 0;
    std::uint32_t partitions_wiped = 0;  // normal: heads and tails of this many partitions
    bool cancelled = false;
};

// Opens `path` for writing and wipes it. Errors: io (naming the path and offset),
// not_found. A cancelled wipe returns its report with cancelled set.
result<wipe_report> wipe_disk(const std::string& path, const wipe_options& options);

// The size of the block device or regular file at fd.
result<std::uint64_t> disk_size_bytes(int fd, const std::string& name);

}  // namespace shoal::agent
