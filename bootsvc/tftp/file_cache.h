// The files a TFTP server is sending, each open once however many clients read it: when a
// lab of hundreds boots at once, every transfer of ipxe.efi reads through one descriptor
// (and so one set of page-cache pages, with one readahead). Entries are keyed by device and
// inode and checked against size and mtime, so a file replaced on disk is opened afresh
// while transfers already under way finish with the copy they started with.
// Single-threaded: owned and used by one server loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "rootdir/root_dir.h"

namespace shoal::tftp {

class shared_file {
public:
    shared_file(bootsvc::opened_file f) noexcept : _file(std::move(f)) {}  // NOLINT

    int fd() const noexcept { return _file.fd.get(); }
    const bootsvc::file_identity& identity() const noexcept { return _file.identity; }
    std::uint64_t size_bytes() const noexcept { return _file.identity.size_bytes; }

private:
    bootsvc::opened_file _file;
};

class file_cache {
public:
    // Keeps at most `idle_files_max` files open that no transfer is reading.
    file_cache(const bootsvc::root_dir& root, std::size_t idle_files_max)
        : _root(root), _idle_files_max(idle_files_max) {}

    // Opens a requested name beneath the root (errors as root_dir::open_file) and returns
    // the one open copy of that file, shared with every other transfer reading it.
    result<std::shared_ptr<const shared_file>> open(std::string_view request_path);

    std::size_t open_count() const noexcept { return _entries.size(); }
    std::uint64_t hit_count() const noexcept { return _hits; }
    std::uint64_t miss_count() const noexcept { return _misses; }

private:
    struct entry {
        std::shared_ptr<const shared_file> file;
        std::uint64_t last_used = 0;
    };
    void evict_idle();

    const bootsvc::root_dir& _root;
    std::size_t _idle_files_max;
    std::vector<entry> _entries;  // few: the boot files of one site
    std::uint64_t _clock = 0;
    std::uint64_t _hits = 0;
    std::uint64_t _misses = 0;
};

}  // namespace shoal::tftp
