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
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"
#include "wire/manifest.h"

namespace shoal::session {

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
