// Restore: an image from a store onto disks (block devices or disk image files), and the
// store-side check of an image (verify).
//
// Per disk: the layout is planned first (same size: as captured; a resizable image on a
// smaller or larger disk: the last partition shrinks or grows, and is refused when its
// filesystem would not fit); then the target's partition table is invalidated, the
// partitions' used blocks are written (chunks read and checked against their stored
// SHA-256, decompressed in parallel, checked against their raw SHA-256, and only then
// written, with io_uring, O_DIRECT where aligned), then the disk's head, then the
// partition table, and finally filesystems are grown to their partitions. A failure
// leaves no valid partition table on the target, so a half-restored disk never passes
// for a whole one. With resume, chunks whose raw bytes are already on the target (by
// their raw SHA-256) are not written again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"
#include "image/store.h"

namespace shoal::image {

struct restore_options {
    std::vector<std::string> targets;  // one per disk of the image, in order
    bool resume = false;
    unsigned threads = 0;  // 0: every core
    // A target file that does not exist (or is empty) is made this size; 0: the captured size.
    std::uint64_t new_file_size_bytes = 0;
    // Called with the used bytes restored (written or found in place) so far, and the total.
    std::function<void(std::uint64_t done_bytes, std::uint64_t total_bytes)> on_progress;
};

struct restore_summary {
    std::uint64_t written_bytes = 0;  // used bytes written
    std::uint64_t skipped_bytes = 0;  // used bytes found already in place (resume)
    std::uint64_t chunks_written = 0;
    std::uint64_t chunks_skipped = 0;
};

// Where a chunk's raw bytes land: [raw_offset, raw_offset+size) of the chunk goes to
// offset_bytes (relative to the region's start, or the disk's once placed).
struct piece {
    std::uint64_t offset_bytes = 0;
    std::size_t raw_offset = 0;
    std::size_t size = 0;
    friend bool operator==(const piece&, const piece&) = default;
};

// A region's chunk -> extent map: chunk i holds used-stream bytes [start(i), +raw_size),
// which fall in one or more used extents. Pure computation (no I/O).
class region_map {
public:
    explicit region_map(const region& r);
    // Chunk `chunk`'s pieces, offsets relative to the region's start, into out (cleared).
    void pieces(std::size_t chunk, std::vector<piece>& out) const;
    std::uint64_t chunk_stream_start(std::size_t chunk) const noexcept { return _chunk_start[chunk]; }

private:
    const region* _r;
    std::vector<std::uint64_t> _extent_start;  // prefix sums of extent sizes
    std::vector<std::uint64_t> _chunk_start;   // prefix sums of chunk raw sizes
};

// One disk's restore in steps, for a writer that gets chunks in any order (a multicast
// receiver; restore_image runs the same steps). open() plans (the size check: nothing is
// written to a target too small); begin() invalidates the target's table unless resuming,
// so a restore that stops part-way leaves no valid table; the caller then writes every
// chunk's pieces at region_offset + piece offset through fd(), the disk's head region
// (the table's sectors) after the partitions; finish() flushes, writes the partition
// table (the last thing written) and grows the filesystems of a resizable image.
class disk_restore {
public:
    // Opens target (block device O_EXCL, or a file made new_file_size_bytes when missing or
    // empty; 0: the captured size). Errors: no_space ("target X holds N bytes, the image's
    // disk 1 needs at least M"), io, invalid_argument.
    static result<std::unique_ptr<disk_restore>> open(const manifest& m, const disk& d,
                                                      const std::string& target,
                                                      std::uint64_t new_file_size_bytes,
                                                      bool resume);
    ~disk_restore();
    disk_restore(const disk_restore&) = delete;
    status begin();
    disk_restore& operator=(const disk_restore&) = delete;

    int fd() const noexcept;         // buffered, read-write
    int direct_fd() const noexcept;  // O_DIRECT, or -1
    std::uint64_t target_size() const noexcept;
    const std::string& target() const noexcept;
    // Where region `region_index` of the disk starts on the target.
    std::uint64_t region_offset(std::size_t region_index) const noexcept;
    // Flush, partition table, grow (see above).
    status finish();

    struct state;

private:
    friend result<restore_summary> restore_image(const chunk_source&, const manifest&,
                                                 const restore_options&);
    explicit disk_restore(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

// Errors name the target/chunk and what is wrong; no_space: "target X holds N bytes, the
// image needs at least M".
result<restore_summary> restore_image(const chunk_source& store, const manifest& m,
                                      const restore_options& options);

struct verify_report {
    std::uint64_t chunks = 0;  // chunk references checked
    std::uint64_t bad_chunks = 0;
    std::vector<std::string> problems;  // the first problems found, for people
};

// Reads every chunk the image uses, checks its stored and raw SHA-256.
result<verify_report> verify_image(
    const chunk_source& store, const manifest& m, unsigned threads,
    const std::function<void(std::uint64_t, std::uint64_t)>& on_progress);

// The smallest disk the image's disk `index` restores onto (for messages and info).
std::uint64_t minimum_disk_size(const manifest& m, const disk& d);

}  // namespace shoal::image
