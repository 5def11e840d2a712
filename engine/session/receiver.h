// The receiver's half of a multicast session, as a state machine with no I/O of its own.
//
// It joins the first session announced under its key (or the one it is told), takes the
// manifest from the session's first blocks and accepts it only if its SHA-256 matches the
// authenticated announce (or the hash it was given out of band), then assembles chunks in
// a bounded set of buffers, rebuilding lost symbols with FEC. A complete chunk is handed
// to the caller (take_chunk), which must check its SHA-256 against the manifest before it
// writes a byte, then say so with chunk_done — a chunk that fails is simply asked for again.
//
// Feedback is a status every feedback interval (set by the sender for the group's size,
// jittered): progress, loss rate, and the blocks it lacks as counts per block. It stays
// quiet about blocks another receiver already asked for with a count at least as large.
// When its buffers are full it drops new chunks (saying it is lagging) and asks for them
// in the catch-up pass, so a slow disk never stalls the group.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"
#include "io/packet_io.h"
#include "wire/manifest.h"
#include "wire/wire.h"

namespace shoal::session {

struct receiver_config {
    std::uint32_t receiver_id = 0;            // 0: chosen at random
    std::uint32_t session_id = 0;             // 0: the first session announced under the key
    std::vector<std::byte> key;
    std::optional<std::array<std::uint8_t, 32>> manifest_sha256;  // if set, required
    std::size_t memory_bytes_max = 256u << 20;  // chunk assembly buffers, all together
    std::int64_t sender_timeout_ns = 5'000'000'000;  // silence after which we give up
    std::uint32_t reorder_blocks = 2;         // blocks behind the newest before a gap is a loss
    std::size_t payload_size_max = 1472;      // status packets are cut to fit
    std::uint32_t manifest_size_max = 64u << 20;
    std::uint32_t block_count_max = 64u << 20;  // refuse sessions larger than this
    std::uint64_t seed = 0;                   // jitter; 0: from the receiver id
};

enum class receiver_phase : std::uint8_t {
    waiting_announce,
    waiting_manifest,
    receiving,
    complete,   // every chunk written and verified; the final statuses are being sent
    finished,   // complete, and the sender has been told
    failed,
};

// A chunk ready to verify and write. `wire` stays valid until chunk_done(chunk, ...).
struct completed_chunk {
    std::uint32_t chunk = 0;
    std::span<const std::byte> wire;
};

struct receiver_stats {
    std::uint64_t data_packets = 0;
    std::uint64_t duplicate_packets = 0;   // symbols it already had
    std::uint64_t foreign_packets = 0;     // another session's, or not ours at all
    std::uint64_t malformed_packets = 0;
    std::uint64_t dropped_no_memory = 0;   // symbols dropped: every buffer in use
    std::uint64_t blocks_decoded = 0;      // blocks that needed FEC to complete
    std::uint64_t chunks_rejected = 0;     // failed their hash and were asked for again
    std::uint64_t statuses_sent = 0;
    std::uint64_t runs_suppressed = 0;     // losses left unsaid: someone had asked already
    std::uint64_t bytes_written = 0;
    std::uint64_t lost_packets = 0;        // by the sender's sequence numbers
    std::uint32_t chunks_present = 0;      // found already on the target (chunk_present)
    std::uint64_t bytes_present = 0;
};

class receiver {
public:
    static result<std::unique_ptr<receiver>> create(const receiver_config& config);
    ~receiver();

    // A packet heard on the group.
    void on_packet(std::span<const std::byte> bytes, std::int64_t now_ns) noexcept;

    // Status packets due now, into out[0..count) (buffers of payload_size_max bytes).
    std::size_t produce(io::packet* out, std::size_t count, std::int64_t now_ns) noexcept;
    // When produce() next has something, or a timeout must be checked.
    std::int64_t next_event_ns(std::int64_t now_ns) const noexcept;

    // Hands out the next chunk to verify and write, if any.
    bool take_chunk(completed_chunk& out) noexcept;
    // The caller's verdict on a chunk from take_chunk: written (true: verified and on
    // disk; raw_bytes counts what was written) or rejected (false: asked for again).
    void chunk_done(std::uint32_t chunk, bool written, std::uint64_t raw_bytes,
                    std::int64_t now_ns) noexcept;

    // The chunk is already on the target: the caller read its bytes there and they match
    // the manifest's raw SHA-256. It counts as written and is never asked for. A chunk
    // already handed to the writer is left to finish. Needs the manifest.
    void chunk_present(std::uint32_t chunk, std::uint64_t raw_bytes) noexcept;

    receiver_phase phase() const noexcept;
    // Why the receiver failed (phase() == failed).
    const error& failure() const noexcept;
    std::uint32_t id() const noexcept;
    std::uint32_t session_id() const noexcept;
    // Once the manifest is in (phase receiving or later).
    const wire::session_manifest* manifest() const noexcept;
    std::uint32_t chunks_written() const noexcept;
    const receiver_stats& stats() const noexcept;

private:
    struct state;
    explicit receiver(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::session
