#include "agent/disk_test.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>

#include "agent/wipe.h"
#include "common/clock.h"

namespace shoal::agent {

namespace {

struct aligned_free {
    void operator()(void* p) const noexcept { std::free(p); }
};

// Reads exactly n bytes at offset, or fails (short reads past the end count as failures).
bool read_all(int fd, char* buf, std::size_t n, std::uint64_t offset) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        got += static_cast<std::size_t>(r);
    }
    return true;
}

void add_bad(disk_test_report& report, std::uint64_t offset, std::uint64_t size) {
    report.bad_bytes += size;
    if (!report.bad.empty()) {
        auto& last = report.bad.back();
        if (last.offset_bytes + last.size_bytes == offset) {
            last.size_bytes += size;
            return;
        }
    }
    report.bad.push_back({offset, size});
}

}  // namespace

result<disk_test_report> test_disk(const std::string& path, const disk_test_options& o) {
    SHOAL_ASSERT(o.block_bytes >= 4096 && o.block_bytes % 4096 == 0);
    bool direct = true;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0 && errno == EINVAL) {
        direct = false;  // tmpfs and some filesystems refuse O_DIRECT
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        return error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                             "{}: cannot open the disk to test it", path);
    }
    std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
    disk_test_report report;
    auto size = disk_size_bytes(fd, path);
    if (!size) {
        return size.err();
    }
    report.disk_size_bytes = *size;
    std::uint32_t sector = 512;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
        int lbs = 0;
        if (::ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs >= 512) {
            sector = static_cast<std::uint32_t>(lbs);
        }
    }
    void* raw = nullptr;
    if (::posix_memalign(&raw, 4096, o.block_bytes) != 0) {
        return error(errc::exhausted, "disk test: no memory for the read buffer");
    }
    std::unique_ptr<char, aligned_free> buf(static_cast<char*>(raw));
    (void)direct;

    const std::uint64_t total = report.disk_size_bytes;
    const std::int64_t started_ns = time::monotonic_ns();
    std::uint64_t offset = 0;
    while (offset < total) {
        if (o.cancel != nullptr && o.cancel->load()) {
            report.cancelled = true;
            break;
        }
        std::uint64_t n = std::min<std::uint64_t>(o.block_bytes, total - offset);
        if (!read_all(fd, buf.get(), static_cast<std::size_t>(n), offset)) {
            // Narrow the failure down sector by sector.
            for (std::uint64_t s = offset; s < offset + n; s += sector) {
                std::uint64_t len = std::min<std::uint64_t>(sector, offset + n - s);
                if (!read_all(fd, buf.get(), static_cast<std::size_t>(len), s)) {
                    add_bad(report, s, len);
                    if (report.bad.size() >= o.bad_ranges_max) {
                        report.stopped_at_limit = true;
                        break;
                    }
                }
            }
            if (report.stopped_at_limit) {
                report.bytes_read = offset + n;
                break;
            }
        }
        offset += n;
        report.bytes_read = offset;
        if (o.throttle_Bps > 0) {
            auto due_ns = started_ns + static_cast<std::int64_t>(static_cast<double>(offset) /
                                                                 o.throttle_Bps * 1e9);
            auto now_ns = time::monotonic_ns();
            if (due_ns > now_ns) {
                time::sleep_for_ns(due_ns - now_ns);
            }
        }
        if (o.on_progress) {
            o.on_progress({offset, total, report.bad_bytes});
        }
    }
    return report;
}

}  // namespace shoal::agent
