#include "rootdir/root_dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal::bootsvc {

namespace {

int sys_openat2(int dir_fd, const char* path, open_how* how) noexcept {
    return static_cast<int>(::syscall(SYS_openat2, dir_fd, path, how, sizeof *how));
}

}  // namespace

result<std::string_view> relative_request_path(std::string_view request_path) noexcept {
    if (request_path.size() > root_dir::path_size_max) {
        return error::format(errc::invalid_argument, 0, "name of {} bytes is longer than {}",
                             request_path.size(), root_dir::path_size_max);
    }
    if (request_path.find('\0') != std::string_view::npos) {
        return error(errc::invalid_argument, "name holds a NUL byte");
    }
    std::size_t first = request_path.find_first_not_of('/');
    if (first == std::string_view::npos) {
        return error(errc::invalid_argument, "empty name");
    }
    std::string_view rel = request_path.substr(first);
    // `..` could stay beneath the root ("a/../b") and openat2 would allow it, but no boot
    // client needs it: refusing every `..` gives one clear log line for every attempt.
    std::size_t start = 0;
    while (start <= rel.size()) {
        std::size_t end = rel.find('/', start);
        if (end == std::string_view::npos) {
            end = rel.size();
        }
        if (rel.substr(start, end - start) == "..") {
            return error(errc::invalid_argument, "name has a '..' component");
        }
        start = end + 1;
    }
    return rel;
}

result<root_dir> root_dir::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return error::format(errc::io, errno, "cannot open root directory {}", path);
    }
    unique_fd dir(fd);
    // Prove openat2 works here once, so that an old kernel fails at start-up, not per file.
    open_how how{};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int probe = sys_openat2(dir.get(), ".", &how);
    if (probe < 0) {
        if (errno == ENOSYS) {
            return error(errc::unsupported, ENOSYS,
                         "openat2 is missing: serving files safely needs Linux 5.6 or later");
        }
        return error::format(errc::io, errno, "cannot use root directory {}", path);
    }
    ::close(probe);
    return root_dir(std::move(dir), path);
}

result<opened_file> root_dir::open_file(std::string_view request_path) const {
    auto rel = relative_request_path(request_path);
    if (!rel) {
        return rel.err();
    }
    char name[path_size_max + 1];
    std::memcpy(name, rel->data(), rel->size());
    name[rel->size()] = '\0';

    open_how how{};
    // O_NONBLOCK: opening a FIFO planted in the root must not block the server.
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int fd = sys_openat2(_fd.get(), name, &how);
    if (fd < 0) {
        int e = errno;
        switch (e) {
        case ENOENT:
        case ENOTDIR: return error(errc::not_found, e, "no such file");
        case EXDEV: return error(errc::invalid_argument, e, "name leads out of the root");
        case ELOOP: return error(errc::invalid_argument, e, "name follows a magic link or loops");
        default: return error(errc::io, e, "cannot open");
        }
    }
    opened_file out{unique_fd(fd), {}};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return error(errc::io, errno, "cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
        return error(errc::invalid_argument, "not a regular file");
    }
    out.identity.device = st.st_dev;
    out.identity.inode = st.st_ino;
    out.identity.size_bytes = static_cast<std::uint64_t>(st.st_size);
    out.identity.mtime_ns =
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    return out;
}

}  // namespace shoal::bootsvc
