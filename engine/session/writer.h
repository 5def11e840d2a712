// The receiver's disk side: a thread that takes complete chunks, checks each against its
// SHA-256, decompresses it and writes it at its offset in the target with io_uring (up to
// four chunks in flight, O_DIRECT when every chunk is whole 4 KiB blocks), so that
// network, decompression and disk overlap. Nothing reaches the target before its hash is
// checked.
//
// The target is a regular file (made the manifest's size), a block device (which must be
// large enough) or /dev/null (checked and decompressed, not stored). After the last chunk
// the data is flushed (fdatasync) before it is reported written, so "complete" means on disk.
//
// With `resume`, a restarted receiver keeps what its last run left: before writing anything
// the writer reads every chunk's extent of the target, and each whose bytes match the
// manifest's raw SHA-256 comes back as `present` — the receiver need not receive it again.
//
// An image session's disks are not one flat range: there the writer hands each verified,
// decompressed chunk (wire and raw SHA-256 both checked) to a target_placement
// (deploy/image_session.h), which writes it to its extents and finishes the disks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"
#include "wire/manifest.h"

namespace shoal::session {

// Where chunks' raw bytes go when the target is not one flat range at target_offset: an
// image session's disks (deploy/image_target.h). Called on the writer's thread only, with
// bytes already checked against both of the chunk's SHA-256.
class target_placement {
public:
    virtual ~target_placement() = default;
    // Writes the chunk's verified raw bytes to their places. An error stops the writer.
    virtual status write_chunk(std::uint32_t chunk, std::span<const std::byte> raw) = 0;
    // Resume: reads what the target holds at the chunk's places into out (its raw size).
    // false when it cannot (the chunk is then received again).
    virtual bool read_chunk(std::uint32_t chunk, std::span<std::byte> out) = 0;
    // Every chunk is on the target: flush, write what was held back (the partition table
    // last) and grow filesystems. The receiver reports complete only after this succeeded.
    virtual status finish() = 0;
};

struct write_done {
    std::uint32_t chunk = 0;
    bool written = false;       // false: failed its hash (ask again) — see writer::failure
    std::uint64_t raw_bytes = 0;
    bool present = false;       // found on the target already (resume), nothing written
};

class writer {
public:
    // Opens the target for the manifest's size. Errors: not_found, no_space ("target of N
    // bytes, the image needs M"), io.
    static result<std::unique_ptr<writer>> open(const std::string& path,
                                                const wire::session_manifest& manifest,
                                                double throttle_Bps = 0, bool resume = false);
    // The same with a placement that owns the target(s): chunks are verified (wire and raw
    // SHA-256) and decompressed here, then handed to placement->write_chunk.
    static result<std::unique_ptr<writer>> open(std::unique_ptr<target_placement> placement,
                                                const wire::session_manifest& manifest,
                                                double throttle_Bps = 0, bool resume = false);
    ~writer();

    // Queues a chunk whose bytes stay valid until its write_done comes back. Returns false
    // when the queue is full (try again after collecting results).
    bool submit(std::uint32_t chunk, std::span<const std::byte> wire) noexcept;
    // Collects finished chunks into out[0..count); returns how many.
    std::size_t collect(write_done* out, std::size_t count) noexcept;

    // A disk error stops the writer for good (a full disk, a failing device); the receiver
    // must fail then. Returns the error once one happened.
    const error* failure() const noexcept;

private:
    struct state;
    explicit writer(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::session
