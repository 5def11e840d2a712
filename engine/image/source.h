// Where a partition's used data comes from when an image is built: the used extents,
// known up front, then the bytes of those extents in ascending order as one sequential
// stream. A capture implements it over a disk (reading the filesystem's bitmap, then the
// used blocks with io_uring); an importer implements it over a foreign format.
//
// How an importer (e.g. FOG's partclone streams) uses it:
//   1. Parse the foreign header and bitmap; turn the bitmap into coalesced byte extents
//      (partition-relative, sorted; `extent_builder` below does the coalescing).
//   2. Implement partition_source: describe() returns the filesystem, the partition's size,
//      the filesystem's size and block size and, if known, the minimum size; extents()
//      returns the extents; read() hands out the used blocks' bytes in order, exactly
//      sum(extents) bytes in total, and then 0. read() may return fewer bytes than asked.
//   3. image_builder (builder.h): begin_disk() with the disk's table, add_region() with the
//      source for each partition (and a memory_source for the disk's head if there is
//      one), then publish(). Chunking, compression on all cores, hashing and storing are
//      the builder's; a failed read() aborts the image and publishes nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"

namespace shoal::image {

// What a source says about its partition before any data is read.
struct source_info {
    fs_type fs = fs_type::raw;
    std::uint64_t size_bytes = 0;          // the partition's size
    std::uint64_t fs_size_bytes = 0;       // the filesystem's size (<= size_bytes); 0: = size
    std::uint64_t minimum_size_bytes = 0;  // 0: unknown (then = fs_size: no shrinking)
    std::uint32_t block_size_bytes = 0;    // the used map's unit (4096 for a 4 KiB fs)
    std::string label;
};

class partition_source {
public:
    virtual ~partition_source() = default;
    virtual source_info describe() const = 0;
    // Sorted, coalesced, inside [0, fs_size): the bytes read() will deliver, in this order.
    virtual std::span<const extent> extents() const = 0;
    // Fills out with the next bytes of the used stream; returns how many (0: the end).
    // Errors name the file and what is wrong (truncated stream, bad checksum, I/O).
    virtual result<std::size_t> read(std::span<std::byte> out) = 0;
};

// Builds coalesced extents from blocks or byte ranges given in ascending order.
class extent_builder {
public:
    // Adds [offset, offset+size); must not start before the end of the previous range.
    // Adjacent ranges merge. Errors: invalid_argument when out of order.
    status add(std::uint64_t offset_bytes, std::uint64_t size_bytes);
    std::vector<extent>& extents() noexcept { return _extents; }
    std::uint64_t total_bytes() const noexcept { return _total; }

private:
    std::vector<extent> _extents;
    std::uint64_t _total = 0;
};

// A source over bytes in memory (a disk's head, a test's data): one extent [0, size).
class memory_source final : public partition_source {
public:
    memory_source(std::span<const std::byte> bytes, source_info info);
    source_info describe() const override { return _info; }
    std::span<const extent> extents() const override { return _extents; }
    result<std::size_t> read(std::span<std::byte> out) override;

private:
    std::span<const std::byte> _bytes;
    source_info _info;
    std::vector<extent> _extents;
    std::size_t _done = 0;
};

}  // namespace shoal::image
