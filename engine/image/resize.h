// Filesystem resizing with the filesystems' own tools (resize2fs, ntfsresize), as FOG's
// resizable images do: a capture shrinks the source's filesystem to its minimum before
// reading it and grows it back after; a restore grows the filesystem to its partition.
// FAT keeps its size. These run programs and, for NTFS, attach a loop device (root).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"

namespace shoal::image {

// Runs argv[0] with the arguments, stdin from `input`; returns its stdout and stderr.
// Errors: io when it cannot start, or exits above ok_exit_max (the message has its last
// output). e2fsck exits 1 when it corrected something, which is success here.
result<std::string> run_program(const std::vector<std::string>& argv, std::string_view input = {},
                                int ok_exit_max = 0);

// A loop device over [offset, offset+size) of a file or block device; detached when destroyed.
class loop_device {
public:
    static result<loop_device> attach(const std::string& path, std::uint64_t offset_bytes,
                                      std::uint64_t size_bytes, bool read_only);
    loop_device(loop_device&& o) noexcept : _path(std::move(o._path)) { o._path.clear(); }
    loop_device& operator=(loop_device&&) = delete;
    ~loop_device();
    const std::string& path() const noexcept { return _path; }

private:
    explicit loop_device(std::string p) : _path(std::move(p)) {}
    std::string _path;
};

// Shrinks the filesystem of partition [offset, offset+size) of disk `path` to its minimum
// (ext: e2fsck -f then resize2fs -M; ntfs: ntfsresize to its minimum). Returns the new
// filesystem size. Other filesystems: unsupported.
result<std::uint64_t> shrink_fs(const std::string& path, fs_type fs, std::uint64_t offset_bytes,
                                std::uint64_t size_bytes);

// Resizes the filesystem in [offset, offset+partition_size) to new_fs_size (grow or back
// to the original after a capture's shrink).
status resize_fs(const std::string& path, fs_type fs, std::uint64_t offset_bytes,
                 std::uint64_t partition_size_bytes, std::uint64_t new_fs_size_bytes);

bool fs_can_resize(fs_type fs) noexcept;

}  // namespace shoal::image
