// DPDK groundwork for a kernel-bypass packet_io: starting the EAL and one Ethernet port with
// an mbuf pool and one receive and one transmit queue, with errors as values.
// This header names no DPDK type beyond forward declarations, so code that only holds a
// port does not pull in the DPDK headers and their build flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

struct rte_mbuf;
struct rte_mempool;

namespace shoal::io::dpdk {

// Starts the EAL with these arguments (without a program name: one is added), e.g.
// {"--in-memory", "--no-pci", "--vdev=net_ring0"}. Once per process: a second call fails
// with errc::exists. A failure carries rte_errno as sys_errno (EINVAL: a bad argument;
// EACCES, ENOMEM, ENODEV, ENOTSUP: the machine or the privileges are missing something).
// Not thread-safe; call it from the thread that will be the main lcore.
status eal_start(std::span<const std::string> args) noexcept;

// Releases what the EAL holds (memory, files under /run/dpdk). No DPDK call may follow, and
// the EAL cannot start again in this process.
status eal_stop() noexcept;

// The port id of a device by its name, e.g. "net_ring0" for --vdev=net_ring0.
result<std::uint16_t> port_by_name(std::string_view name) noexcept;

// Makes a pool of packet buffers. count is best one less than a power of two (the pool's
// ring holds 2^n - 1); cache_count is per lcore and at most 512. The pool is the caller's
// to free with rte_mempool_free once no port uses it.
result<rte_mempool*> mbuf_pool_create(const std::string& name, std::uint32_t count,
                                      std::uint32_t cache_count,
                                      std::uint16_t data_room_bytes) noexcept;

struct port_config {
    std::uint16_t port_id = 0;
    std::uint16_t rx_descriptor_count = 1024;  // adjusted to what the device allows
    std::uint16_t tx_descriptor_count = 1024;
    // The pool must cover every descriptor of both queues, the lcore cache and the bursts
    // the application holds: 8191 leaves room over the 2048 descriptors above.
    std::uint32_t mbuf_count = 8191;
    std::uint32_t mbuf_cache_count = 256;
    std::uint16_t mbuf_data_room_bytes = 2048 + 128;  // RTE_MBUF_DEFAULT_BUF_SIZE
};

// A started port with its own mbuf pool, one receive queue (0) and one transmit queue (0).
// Stopping and closing the port, then freeing the pool, happen in the destructor.
class port {
public:
    static result<std::unique_ptr<port>> start(const port_config& config) noexcept;
    ~port();
    port(const port&) = delete;
    port& operator=(const port&) = delete;

    std::uint16_t id() const noexcept { return _id; }
    rte_mempool* pool() const noexcept { return _pool; }

    // Up to count mbufs from the pool into out; returns how many (all or none, as DPDK's
    // rte_pktmbuf_alloc_bulk). The caller owns them until tx_burst takes them or it frees
    // them with rte_pktmbuf_free.
    std::size_t alloc_burst(rte_mbuf** out, std::size_t count) noexcept;
    // Receives up to count packets; the caller owns and frees them.
    std::size_t rx_burst(rte_mbuf** out, std::size_t count) noexcept;
    // Hands packets to the device; returns how many it took (it owns those; the caller
    // still owns the rest).
    std::size_t tx_burst(rte_mbuf** packets, std::size_t count) noexcept;

private:
    port(std::uint16_t id, rte_mempool* pool) noexcept : _id(id), _pool(pool) {}
    std::uint16_t _id;
    rte_mempool* _pool;
    bool _started = false;
};

}  // namespace shoal::io::dpdk
