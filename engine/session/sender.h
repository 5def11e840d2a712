// The sender's half of a multicast session, as a state machine with no I/O of its own:
// the caller hands it empty packet buffers and the packets it received, and sends what it
// produces. The same logic runs over kernel sockets, DPDK and the simulated network.
//
// What it does:
//  - waits for receivers (at least receivers_min, or at most wait_max_ns), announcing the
//    session (authenticated) so they can join;
//  - the main pass: every block once, source symbols then `proactive` repair symbols,
//    paced by a token bucket at rate_bps;
//  - repairs by count: a status saying "block b lacks m symbols" makes the sender send m
//    NEW repair symbols of b, once for every receiver that lacks at most m; repairs are
//    interleaved with the main pass so receivers' memory stays bounded;
//  - the catch-up pass: after the main pass, whatever receivers still ask for (late
//    joiners, receivers whose memory or disk could not keep up) until every known receiver
//    is complete, or none has spoken for idle_timeout_ns;
//  - receivers that drain below rate_floor_kBps do not set the pace: they are told they
//    will be served in the catch-up pass, or to fall back to unicast, and the sender logs it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"
#include "io/packet_io.h"
#include "wire/wire.h"

namespace shoal::session {

enum class slow_receiver_policy : std::uint8_t { catch_up, fall_back };

struct sender_config {
    std::uint32_t session_id = 1;
    std::vector<std::byte> key;                 // session key for announce/control tags
    std::uint16_t symbol_size = 1452;           // 1472-byte UDP payload with the data header
    std::uint8_t k_max = 64;                    // source symbols per block
    std::uint64_t rate_bps = 900'000'000;       // IP-layer bits per second
    bool adaptive_rate = false;                 // steer rate_bps by receivers' loss reports
    std::uint64_t rate_bps_min = 10'000'000;    // adaptive mode never goes below
    std::uint32_t packet_overhead_bytes = 28;   // IPv4 + UDP, counted against the rate
    std::uint32_t burst_packets_max = 64;       // token-bucket depth, in packets, at least...
    std::int64_t burst_ns = 2'000'000;          // ...or this long at the rate, whichever is more
                                                // (a late wake-up must not lose the pace)
    std::uint32_t send_batch_packets = 16;      // wait for this many packets' tokens, then send
    std::uint32_t receivers_min = 0;            // start once this many have joined...
    std::int64_t wait_max_ns = 0;               // ...or this long after the first announce
    std::int64_t announce_interval_ns = 100'000'000;
    std::uint32_t feedback_packets_per_s_max = 2000;  // all receivers' statuses together
    std::int64_t feedback_interval_min_ns = 5'000'000;
    std::int64_t idle_timeout_ns = 3'000'000'000;     // catch-up with no receiver heard: end
    std::uint32_t rate_floor_kBps = 0;          // receivers draining below are slow (0: off)
    slow_receiver_policy slow_policy = slow_receiver_policy::catch_up;
    std::uint32_t receivers_max = 1024;         // receivers tracked; more are served, not listed
    std::uint8_t proactive_max = 16;            // proactive repair symbols per block, at most
    std::uint32_t status_blocks_max = 16384;    // blocks one status may ask for; the rest wait
};

struct receiver_report {
    std::uint32_t id = 0;
    std::uint32_t address = 0;           // IPv4, network order, as last seen
    std::int64_t first_seen_ns = 0;
    std::int64_t last_seen_ns = 0;
    std::int64_t complete_ns = 0;        // when it first said complete, 0 if not yet
    std::uint64_t bytes_written = 0;
    std::uint32_t blocks_complete = 0;
    std::uint32_t loss_ppm = 0;
    std::uint32_t drain_rate_kBps = 0;
    std::uint64_t blocks_asked = 0;      // blocks it asked repairs for, all statuses
    std::uint8_t flags = 0;              // last wire::status_flag_*
    bool told_slow = false;              // control sent: below the floor
};

struct sender_stats {
    std::uint64_t source_packets = 0;
    std::uint64_t proactive_packets = 0;
    std::uint64_t repair_packets = 0;    // answers to receivers' statuses
    std::uint64_t announce_packets = 0;
    std::uint64_t control_packets = 0;
    std::uint64_t bytes_sent = 0;        // IP-layer bytes, overhead included
    std::uint64_t statuses_received = 0;
    std::uint64_t statuses_rejected = 0; // malformed or another session's
    std::uint64_t status_blocks_clipped = 0;  // asks beyond status_blocks_max
    std::uint64_t rate_bps_lowest = UINT64_MAX;  // the adaptive mode's lowest pace
    std::int64_t start_ns = 0;           // main pass began
    std::int64_t main_pass_end_ns = 0;
    std::int64_t end_ns = 0;
};

class sender {
public:
    // objects[0] is the encoded session manifest and objects[i+1] chunk i's wire bytes;
    // the sender reads them (never writes) for as long as it lives. manifest_sha256 is the
    // manifest's hash, which announces carry.
    static result<std::unique_ptr<sender>> create(
        const sender_config& config, std::vector<std::span<const std::byte>> objects,
        const std::array<std::uint8_t, 32>& manifest_sha256);
    ~sender();

    // Fills out[0..count) with packets to send now (each buffer must hold symbol_size +
    // wire::data_header_size bytes); returns how many. Never allocates.
    std::size_t produce(io::packet* out, std::size_t count, std::int64_t now_ns) noexcept;

    // The earliest time produce() may have something to send.
    std::int64_t next_send_ns(std::int64_t now_ns) const noexcept;

    // A packet heard on the group (statuses from receivers; anything else is ignored).
    void on_packet(std::span<const std::byte> bytes, std::uint32_t from_address,
                   std::int64_t now_ns) noexcept;

    // Ends the session now (a cancelled task): the "done" announces go out, receivers that
    // still lack chunks stop with that count instead of waiting out their timeout.
    void end(std::int64_t now_ns) noexcept;

    wire::session_phase phase() const noexcept;
    bool finished() const noexcept;
    std::uint64_t rate_bps() const noexcept;
    std::uint32_t position() const noexcept;      // next block of the main pass
    std::uint32_t block_count() const noexcept;
    const sender_stats& stats() const noexcept;
    std::span<const receiver_report> receivers() const noexcept;

private:
    struct state;
    explicit sender(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::session
