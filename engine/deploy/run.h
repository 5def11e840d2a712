// The sender's and the receiver's run loops: a session state machine (session/) driven
// over a kernel UDP socket (io/udp_uring), with the receiver's writer thread. `shoal send`,
// `shoal recv` and shoald's multicast sessions all run these; the callers only parse
// options and print.
//
// Both loops run on the calling thread until the session ends, `cancel` becomes true, or
// an error stops them. on_progress is called on that same thread about once a second
// (keep it short: the loop does not send while it runs).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "io/udp_uring.h"
#include "session/chunks.h"
#include "session/receiver.h"
#include "session/sender.h"
#include "wire/wire.h"

namespace shoal::deploy {

// ---- sender ----

struct send_progress {
    std::int64_t elapsed_ns = 0;  // since run_sender began
    wire::session_phase phase = wire::session_phase::waiting;
    std::uint32_t position = 0;  // next block of the main pass
    std::uint32_t block_count = 0;
    std::uint64_t total_bytes = 0;  // raw bytes each receiver writes
    std::uint64_t rate_bps = 0;     // current pace
    const session::sender_stats* stats = nullptr;
    // Every receiver heard so far (id: the receiver's --id, e.g. its task id; bytes_written
    // of total_bytes; loss; flags: wire::status_flag_complete / _lagging / _failed).
    std::span<const session::receiver_report> receivers;
};

struct send_config {
    io::udp_config udp;
    // session_id 0: chosen at random. symbol_size is set from udp.payload_size_max.
    session::sender_config sender;
    std::function<void(const send_progress&)> on_progress;  // about once a second
    // true: end the session now (receivers are told, a few "done" announces) and return.
    const std::atomic<bool>* cancel = nullptr;
};

struct send_summary {
    std::uint32_t session_id = 0;
    std::uint64_t bytes = 0;         // raw bytes every receiver writes
    std::uint64_t wire_bytes = 0;    // chunks' bytes as sent (compressed)
    double seconds = 0;              // main pass start to end
    double cpu_seconds_sending = 0;  // process CPU time while the loop ran
    session::sender_stats stats;
    std::vector<session::receiver_report> receivers;
    std::size_t complete = 0;  // receivers that said complete
    bool cancelled = false;
};

// Runs a prepared session (session::prepare_session for bytes, prepare_image_session for
// a store image) to its end. Errors: the socket (io), the sender's set-up; a session that
// ends with receivers incomplete is not an error (see summary.complete).
result<send_summary> run_sender(const session::prepared_session& prepared,
                                const send_config& config);

// ---- receiver ----

struct recv_progress {
    std::int64_t elapsed_ns = 0;
    session::receiver_phase phase = session::receiver_phase::waiting_announce;
    std::uint32_t chunks_written = 0;
    std::uint32_t chunk_count = 0;  // 0 until the manifest is in
    std::uint64_t total_bytes = 0;  // 0 until the manifest is in
    const session::receiver_stats* stats = nullptr;
};

struct recv_config {
    io::udp_config udp;
    session::receiver_config receiver;  // receiver_id: e.g. shoald's task id (0: random)
    // A plain session: one target (disk, partition, file or /dev/null). An image session:
    // one per disk of the image, written as `shoal image restore` would.
    std::vector<std::string> targets;
    bool resume = false;                            // keep chunks already on the target(s)
    double throttle_Bps = 0;                        // tests of slow receivers
    std::int64_t join_timeout_ns = 60'000'000'000;  // no session announced: give up
    // Non-empty: accept only an image session carrying this image (else fail clearly).
    std::string image_name;
    // New target files of an image session are made this size (0: the captured disk's).
    std::uint64_t new_file_size_bytes = 0;
    std::function<void(const recv_progress&)> on_progress;  // about once a second
    const std::atomic<bool>* cancel = nullptr;
};

struct recv_summary {
    std::uint32_t id = 0;  // this receiver's id
    std::uint32_t session_id = 0;
    bool complete = false;         // every chunk written and verified (and for an
                                   // image: table written, filesystems grown)
    std::optional<error> failure;  // why not complete
    bool target_failed = false;    // the failure was the target's (disk error)
    std::string image_name;        // an image session's image
    session::receiver_stats stats;
    double seconds = 0;  // first data packet to the end
    double cpu_seconds = 0;
    bool cancelled = false;
};

// Joins a session and writes it. Errors (nothing written): bad config, the socket, no
// session within join_timeout_ns, a target that cannot be opened or is too small, an
// image session that does not match image_name. A session that fails part-way returns a
// summary with complete == false and the failure.
result<recv_summary> run_receiver(const recv_config& config);

}  // namespace shoal::deploy
