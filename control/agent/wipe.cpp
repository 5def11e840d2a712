#include "agent/wipe.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <vector>

#include "image/table.h"

namespace shoal::agent {

namespace {

constexpr std::uint64_t mib = 1 << 20;
constexpr std::uint64_t disk_end_bytes = 2 * mib;       // fast: each end of the disk
constexpr std::uint64_t partition_end_bytes = 1 * mib;  // normal: each end of a partition
constexpr std::uint64_t full_write_bytes = 4 * mib;     // full: one write

class fd_closer {
public:
    explicit fd_closer(int fd) : _fd(fd) {}
    ~fd_closer() {
        if (_fd >= 0) {
            ::close(_fd);
        }
    }
    fd_closer(const fd_closer&) = delete;
    fd_closer& operator=(const fd_closer&) = delete;

private:
    int _fd;
};

status write_zeros(int fd, const std::string& path, std::uint64_t offset, std::uint64_t size,
                   const std::vector<char>& zeros, wipe_report& report) {
    while (size > 0) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, zeros.size()));
        ssize_t w = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(offset));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return error::format(errc::io, w < 0 ? errno : EIO,
                                 "{}: writing zeros at byte {} failed", path, offset);
        }
        offset += static_cast<std::uint64_t>(w);
        size -= static_cast<std::uint64_t>(w);
        report.bytes_written += static_cast<std::uint64_t>(w);
    }
    return ok();
}

// [offset, offset+size) clipped to the disk.
status wipe_range(int fd, const std::string& path, std::uint64_t offset, std::uint64_t size,
                  const std::vector<char>& zeros, wipe_report& report) {
    if (offset >= report.disk_size_bytes) {
        return ok();
    }
    size = std::min(size, report.disk_size_bytes - offset);
    return write_zeros(fd, path, offset, size, zeros, report);
}

}  // namespace

result<std::uint64_t> disk_size_bytes(int fd, const std::string& name) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return error::format(errc::io, errno, "{}: stat failed", name);
    }
    if (S_ISBLK(st.st_mode)) {
        std::uint64_t size = 0;
        if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
            return error::format(errc::io, errno, "{}: cannot read the device's size", name);
        }
        return size;
    }
    if (S_ISREG(st.st_mode)) {
        return static_cast<std::uint64_t>(st.st_size);
    }
    return error::format(errc::invalid_argument, 0, "{}: neither a disk nor a file", name);
}

result<wipe_report> wipe_disk(const std::string& path, const wipe_options& o) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return error::format(errno == ENOENT ? errc::not_found : errc::io, errno,
                             "{}: cannot open the disk to wipe it", path);
    }
    fd_closer closer(fd);
    wipe_report report;
    auto size = disk_size_bytes(fd, path);
    if (!size) {
        return size.err();
    }
    report.disk_size_bytes = *size;
    const std::uint64_t total = report.disk_size_bytes;
    std::vector<char> zeros(o.mode == wipe_mode::full ? full_write_bytes : disk_end_bytes, 0);

    // The partitions, read before anything is zeroed (normal only).
    std::vector<image::table_entry> parts;
    if (o.mode == wipe_mode::normal) {
        auto table = image::read_partition_table(fd, path);
        if (table) {
            for (const auto& e : table->entries) {
                if (!e.container) {
                    parts.push_back(e);
                }
            }
        }
        // An unreadable table leaves only the disk's ends to wipe: nothing to lose.
    }

    if (o.mode == wipe_mode::full) {
        std::uint64_t offset = 0;
        while (offset < total) {
            if (o.cancel != nullptr && o.cancel->load()) {
                report.cancelled = true;
                break;
            }
            std::uint64_t n = std::min<std::uint64_t>(full_write_bytes, total - offset);
            SHOAL_RETURN_IF_ERROR(write_zeros(fd, path, offset, n, zeros, report));
            offset += n;
            if (o.on_progress) {
                o.on_progress({offset, total});
            }
        }
    } else {
        for (const auto& p : parts) {
            if (o.cancel != nullptr && o.cancel->load()) {
                report.cancelled = true;
                break;
            }
            SHOAL_RETURN_IF_ERROR(
                wipe_range(fd, path, p.start_bytes, partition_end_bytes, zeros, report));
            if (p.size_bytes > partition_end_bytes) {
                SHOAL_RETURN_IF_ERROR(wipe_range(fd, path,
                                                 p.start_bytes + p.size_bytes - partition_end_bytes,
                                                 partition_end_bytes, zeros, report));
            }
            ++report.partitions_wiped;
        }
        // The disk's ends last: the table had to be read first.
        SHOAL_RETURN_IF_ERROR(wipe_range(fd, path, 0, disk_end_bytes, zeros, report));
        std::uint64_t tail = total > disk_end_bytes ? total - disk_end_bytes : 0;
        SHOAL_RETURN_IF_ERROR(wipe_range(fd, path, tail, disk_end_bytes, zeros, report));
        if (o.on_progress) {
            o.on_progress({total, total});
        }
    }
    if (::fdatasync(fd) != 0) {
        return error::format(errc::io, errno, "{}: flushing the wipe failed", path);
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
        (void)::ioctl(fd, BLKRRPART);  // busy or partitionless devices refuse: harmless
    }
    return report;
}

}  // namespace shoal::agent
