// One batch packet-I/O interface for every data path: io_uring on kernel UDP sockets, DPDK
// (kernel bypass), and the simulated network of the unit tests. The session code speaks
// only to this interface: bursts of packets in, a count out, buffers owned by the backend.
//
// Ownership:
//  - Receive: recv_burst fills `out` with packets whose bytes live in the backend's
//    buffers. The caller owns them until it passes them back to release_burst, which it
//    must do for every packet it received, on every path (errors included).
//  - Send: the caller gets buffers with alloc_burst, writes each packet, sets its size and
//    hands them to send_burst. send_burst takes ownership of the packets it accepts
//    (the first `returned` of them); the caller still owns any it did not accept and must
//    retry them or give them back with release_burst.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>

#include "common/result.h"

namespace shoal::io {

struct packet {
    std::byte* data = nullptr;   // the payload (UDP payload on kernel sockets)
    std::uint32_t size = 0;      // bytes of payload
    std::uint32_t buffer_id = 0; // backend's own handle; do not touch
    sockaddr_in peer{};          // receive: who sent it. send: ignored (see packet_io).
};

class packet_io {
public:
    virtual ~packet_io() = default;

    // Largest payload a packet may carry on this path.
    virtual std::size_t payload_size_max() const noexcept = 0;

    // Gets up to `count` empty send buffers (payload_size_max bytes each); returns how many.
    virtual std::size_t alloc_burst(packet* out, std::size_t count) noexcept = 0;

    // Sends packets to the path's destination (the session's multicast group). Returns how
    // many were accepted; fewer than count means the path is full right now (try again
    // later), an error means the path is broken.
    virtual result<std::size_t> send_burst(packet* packets, std::size_t count) noexcept = 0;

    // Waits at most timeout_ns (0: do not wait) for packets; returns how many were put in
    // out[0..count). 0 is a timeout, not an error.
    virtual result<std::size_t> recv_burst(packet* out, std::size_t count,
                                           std::int64_t timeout_ns) noexcept = 0;

    // Gives back buffers: received packets, or send buffers that were never sent.
    virtual void release_burst(packet* packets, std::size_t count) noexcept = 0;
};

}  // namespace shoal::io
