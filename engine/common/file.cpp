#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace shoal {

result<std::vector<std::byte>> read_file(const std::string& path, std::size_t size_bytes_max) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return error::format(errno == ENOENT ? errc::not_found : errc::io, errno, "opening {}",
                             path);
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return error::format(errc::io, e, "stat of {}", path);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return error::format(errc::invalid_argument, 0, "{} is not a regular file", path);
    }
    if (static_cast<std::uint64_t>(st.st_size) > size_bytes_max) {
        ::close(fd);
        return error::format(errc::malformed, 0, "{}: {} bytes, over the limit of {}", path,
                             st.st_size, size_bytes_max);
    }
    std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int e = n < 0 ? errno : 0;
            ::close(fd);
            return error::format(n < 0 ? errc::io : errc::truncated, e, "reading {}", path);
        }
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return out;
}

}  // namespace shoal
