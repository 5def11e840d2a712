// packet_io on a kernel UDP socket joined to a multicast group, driven by io_uring:
// a provided-buffer ring with multishot recvmsg for receive, and batched sendmsg with UDP
// GSO (UDP_SEGMENT) for send where the kernel has it. All buffers are allocated in create().
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "io/packet_io.h"

namespace shoal::io {

struct udp_config {
    in_addr group{};                 // multicast group (or a unicast address for tests)
    std::uint16_t port = 0;
    in_addr interface_address{};     // local address of the interface to use; 0 = any
    std::string interface_name;      // or its name ("" = choose by address / default route)
    int ttl = 1;                     // multicast TTL: 1 keeps it in the lab's subnet
    bool loopback = true;            // IP_MULTICAST_LOOP: receivers on this host hear us
    std::size_t payload_size_max = 1472;   // fits a 1500-byte MTU with IPv4 + UDP
    std::size_t recv_buffer_count = 4096;  // provided buffers for receive (power of two)
    std::size_t send_buffer_count = 1024;  // send buffers in flight at most
    std::size_t socket_buffer_bytes = 32u << 20;  // SO_RCVBUF/SO_SNDBUF (forced when root)
    bool use_gso = true;             // batch equal-size sends with UDP_SEGMENT
};

// Counters a person can read to see what the path did.
struct udp_stats {
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t send_calls = 0;           // sendmsg operations issued (GSO batches count 1)
    std::uint64_t recv_no_buffer = 0;       // kernel found the provided-buffer ring empty
    std::uint64_t recv_truncated = 0;       // datagrams larger than a buffer, dropped
};

class udp_uring final : public packet_io {
public:
    // Opens the socket, joins the group, sets up the ring and buffers.
    // Errors name the system call and the address, e.g. "join 239.1.2.3 on eth0: ..."
    static result<std::unique_ptr<udp_uring>> create(const udp_config& config) noexcept;
    ~udp_uring() override;

    std::size_t payload_size_max() const noexcept override;
    std::size_t alloc_burst(packet* out, std::size_t count) noexcept override;
    result<std::size_t> send_burst(packet* packets, std::size_t count) noexcept override;
    result<std::size_t> recv_burst(packet* out, std::size_t count,
                                   std::int64_t timeout_ns) noexcept override;
    void release_burst(packet* packets, std::size_t count) noexcept override;

    const udp_stats& stats() const noexcept;
    // Whether sends use UDP GSO (false when the kernel or socket refused it).
    bool gso_active() const noexcept;

private:
    struct state;
    explicit udp_uring(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::io
