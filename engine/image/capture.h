// Capture: disks (block devices or disk image files) into an image in a store. Reads only
// the used blocks of ext2/3/4, NTFS and FAT partitions (raw for anything else), with
// io_uring, compresses on every core, and publishes the manifest only when all is stored.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/builder.h"
#include "image/manifest.h"
#include "image/store.h"

namespace shoal::image {

struct capture_options {
    std::vector<std::string> disks;  // d1, d2, … in this order
    image_kind kind = image_kind::single_disk_resizable;
    std::vector<std::uint32_t> partitions;  // multipart: only these (empty: all)
    // resizable: shrink each ext/NTFS filesystem on the source to its minimum first and
    // grow it back afterwards (FOG's way; the source must not be mounted). Without it the
    // minimum size is the filesystem's own size.
    bool shrink = true;
    build_options build;
    // Used bytes captured so far and the total expected (from the used maps, read first).
    std::function<void(std::uint64_t done_bytes, std::uint64_t total_bytes)> on_progress;
};

// Captures into `name`. Errors name the disk/partition and what is wrong; nothing is
// published on error (an earlier image of the name is kept).
result<manifest> capture_image(chunk_sink& store, const std::string& name,
                               const capture_options& options);

// The size of a disk or disk image file open at fd.
result<std::uint64_t> disk_size_of(int fd, const std::string& path);

}  // namespace shoal::image
