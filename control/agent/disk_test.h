// The disk surface test: read every sector, report the ranges that cannot be read.
// Reads go in blocks (1 MiB); a block that fails is read again sector by sector (the
// device's logical block size) so each unreadable range is exact. O_DIRECT where the
// target allows it, so the page cache does not answer for the disk.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"

namespace shoal::agent {

struct bad_range {
    std::uint64_t offset_bytes = 0;
    std::uint64_t size_bytes = 0;
};

struct disk_test_progress {
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;
    std::uint64_t bad_bytes = 0;
};

struct disk_test_options {
    std::uint32_t block_bytes = 1 << 20;
    std::uint32_t bad_ranges_max = 1024;  // past this, the test stops: the disk is dying
    double throttle_Bps = 0;  // > 0: read no faster (tests of a slow disk, e.g. a cancel)
    std::function<void(const disk_test_progress&)> on_progress;
    const std::atomic<bool>* cancel = nullptr;
};

struct disk_test_report {
    std::uint64_t disk_size_bytes = 0;
    std::uint64_t bytes_read = 0;
    std::uint64_t bad_bytes = 0;
    std::vector<bad_range> bad;  // sorted, merged
    bool cancelled = false;
    bool stopped_at_limit = false;  // bad_ranges_max reached
};

result<disk_test_report> test_disk(const std::string& path, const disk_test_options& options);

}  // namespace shoal::agent
