// Which bytes of a partition hold data, from the filesystem's own allocation maps:
// ext2/3/4 through libext2fs (block bitmaps), NTFS through libntfs-3g ($Bitmap), FAT12/16/32
// from the FAT itself (read here: no maintained Debian library exposes it; see
// docs/decisions.md), the header page of Linux swap; anything else is raw (all used).
// The filesystem type comes from libblkid.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"
#include "image/source.h"

namespace shoal::image {

struct used_map {
    source_info info;             // fs, sizes, block size, label
    std::vector<extent> extents;  // partition-relative, sorted, coalesced
};

// Probes the partition [offset, offset+size) of the disk at `path` (open as fd) and reads
// its allocation map. force_raw skips the probe. Errors name the partition and what is
// wrong (a damaged bitmap is an error, not a silent fall back to raw).
result<used_map> read_used_map(int fd, const std::string& path, std::uint64_t offset_bytes,
                               std::uint64_t size_bytes, bool force_raw = false);

// FAT's allocation table from the partition's first bytes (boot sector) and a reader of
// the partition: exposed for tests and the fuzzer.
result<used_map> read_fat_map(int fd, std::uint64_t offset_bytes, std::uint64_t size_bytes,
                              const std::string& name);

}  // namespace shoal::image
