// A directory that files are served from, and the one way to open a file beneath it.
// TFTP and HTTP both serve through this, so that no requested name — `..`, an absolute
// path, a symlink pointing out, a magic link in /proc — can open anything outside the root.
// The kernel enforces it: openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS (Linux
// 5.6 and later), on a directory descriptor held open for the root's lifetime.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "rootdir/unique_fd.h"

namespace shoal::bootsvc {

// Which version of which file: a file replaced by rename gets another inode, one rewritten
// in place another size or mtime, so a cache keyed by this never serves stale bytes.
struct file_identity {
    dev_t device = 0;
    ino_t inode = 0;
    std::uint64_t size_bytes = 0;
    std::int64_t mtime_ns = 0;

    bool operator==(const file_identity&) const = default;
};

struct opened_file {
    unique_fd fd;  // read-only, O_CLOEXEC
    file_identity identity;
};

class root_dir {
public:
    // Longest name a client may ask for; longer ones are refused before any system call.
    static constexpr std::size_t path_size_max = 1024;

    // Opens the directory at `path` (it must exist and be a directory).
    static result<root_dir> open(const std::string& path);

    // Opens the regular file a client names, beneath the root. Leading slashes mean the root
    // itself ("/ipxe.efi" is "ipxe.efi", as tftp-hpa -s serves). Errors:
    //  - invalid_argument: the name leaves the root (a `..` component, a symlink out, a magic
    //    link), is empty, holds a NUL byte, is too long, or is not a regular file;
    //  - not_found: nothing by that name;
    //  - io (with errno): anything else, e.g. EACCES.
    result<opened_file> open_file(std::string_view request_path) const;

    const std::string& path() const noexcept { return _path; }
    int fd() const noexcept { return _fd.get(); }

private:
    root_dir(unique_fd fd, std::string path) : _fd(std::move(fd)), _path(std::move(path)) {}

    unique_fd _fd;
    std::string _path;
};

// The relative name a request path stands for (leading slashes removed), or
// invalid_argument if it may not be opened at all. No system call; exposed for tests.
result<std::string_view> relative_request_path(std::string_view request_path) noexcept;

}  // namespace shoal::bootsvc
