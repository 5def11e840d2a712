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

#include <cstdint>
#include <functional>
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

// Errors name the target/chunk and what is wrong; no_space: "target X holds N bytes, the
// image needs at least M".
result<restore_summary> restore_image(const chunk_store& store, const manifest& m,
                                      const restore_options& options);

struct verify_report {
    std::uint64_t chunks = 0;  // chunk references checked
    std::uint64_t bad_chunks = 0;
    std::vector<std::string> problems;  // the first problems found, for people
};

// Reads every chunk the image uses, checks its stored and raw SHA-256.
result<verify_report> verify_image(
    const chunk_store& store, const manifest& m, unsigned threads,
    const std::function<void(std::uint64_t, std::uint64_t)>& on_progress);

// The smallest disk the image's disk `index` restores onto (for messages and info).
std::uint64_t minimum_disk_size(const manifest& m, const disk& d);

}  // namespace shoal::image
