// udp_uring: packet_io on one kernel UDP socket, driven by two io_uring instances.
//
// Receive and send each have their own ring so that reaping one direction never has to
// stash completions that belong to the other, and the two directions share no state.
//
// Receive: recv_buffer_count buffers in a provided-buffer ring, and one multishot recvmsg
// that picks a buffer per datagram. Each buffer is [io_uring_recvmsg_out][sockaddr_in]
// [payload]. A buffer is in exactly one of three places: in the buffer ring (the kernel may
// fill it), in a CQE not yet harvested, or held by the caller (bit set in _recv_held_bits)
// until release_burst puts it back in the ring.
//
// Send: buffers come from a buffer_pool. send_burst turns runs of packets into sendmsg
// operations (one per packet, or one per GSO batch) held in a fixed array of send_op
// slots; a slot and its buffers are freed when its completion is reaped. Packets the kernel
// asked us to retry (ENOBUFS, EAGAIN, a refused first GSO send) wait in _retry, ahead of
// new packets.
#include "io/udp_uring.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "common/check.h"
#include "common/clock.h"
#include "common/pool.h"

namespace shoal::io {
namespace {

// The kernel's UDP_MAX_SEGMENTS: segments in one GSO sendmsg.
constexpr std::size_t gso_segment_count_max = 64;
// Payload bytes in one GSO sendmsg: the whole batch is one IP datagram of at most 64 KiB
// before segmentation, so stay clear of 65535 minus the IP and UDP headers.
constexpr std::size_t gso_bytes_max = 65000;
// Largest UDP payload in one IPv4 datagram (65535 - 20 - 8).
constexpr std::size_t udp_payload_size_max = 65507;
// Buffer ids are 16 bits and the kernel caps a buffer ring at 32768 entries.
constexpr std::size_t recv_buffer_count_max = 32768;
// sendmsg operations in flight at most: the send queue's limit. Each slot holds up to
// gso_segment_count_max packets, so 256 slots keep up to 16384 packets moving with GSO,
// and one per packet without; beyond that send_burst accepts fewer.
constexpr std::size_t send_op_count_max = 256;
// Completions looked at per io_uring_peek_batch_cqe call (an array on the stack).
constexpr unsigned cqe_batch_max = 64;
// How long send_burst waits for one completion when every slot is in flight, before it
// returns what it accepted. Short: the caller decides what to do with a full path.
constexpr std::int64_t send_full_wait_ns = 1 * time::ns_per_ms;
// How long the destructor waits for the kernel to finish with our buffers.
constexpr std::int64_t shutdown_wait_ns = 200 * time::ns_per_ms;
// Submission queue entries of the receive ring: the multishot recvmsg and a cancel.
constexpr unsigned recv_sq_entry_count = 4;
// Wake-ups one recv_burst call sleeps through at most. Each ends in a completion or the
// deadline; the count only guards against completions that never carry a packet.
constexpr int recv_wait_count_max = 1000;

// send buffer ids carry this bit so release_burst can tell them from receive buffer ids.
constexpr std::uint32_t send_buffer_tag = 1u << 31;
constexpr unsigned recv_buffer_group = 0;
// user_data of the multishot recvmsg and of its cancel, on the receive ring.
constexpr std::uint64_t recv_user_data = 1;
constexpr std::uint64_t cancel_user_data = 2;
// user_data of the shutdown's cancel on the send ring (slots use 0..op_count).
constexpr std::uint64_t send_cancel_user_data = UINT64_MAX;

constexpr std::size_t recv_header_size = sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_in);
constexpr std::size_t cache_line_size = 64;

struct addr_text {
    char text[INET_ADDRSTRLEN];
    explicit addr_text(in_addr a) noexcept {
        if (inet_ntop(AF_INET, &a, text, sizeof text) == nullptr) {
            std::strcpy(text, "?");
        }
    }
};

std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

// One sendmsg in flight: the kernel reads msg, iov and control until it completes.
struct send_op {
    msghdr msg{};
    iovec iov[gso_segment_count_max]{};
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(std::uint16_t))]{};
    std::uint32_t buffer_index[gso_segment_count_max]{};  // in the send pool
    std::uint32_t packet_count = 0;
    bool gso = false;
};

// A packet on its way into a sendmsg: new from the caller, or one the kernel asked us to
// send again.
struct send_item {
    std::uint32_t buffer_index;
    std::uint32_t size;
};

}  // namespace

struct udp_uring::state {
    udp_config config;
    udp_stats stats;
    int fd = -1;
    sockaddr_in destination{};

    // Receive.
    io_uring recv_ring{};
    bool recv_ring_ready = false;
    void* recv_mapping = nullptr;
    std::size_t recv_mapping_size = 0;
    io_uring_buf_ring* buf_ring = nullptr;
    bool buf_ring_registered = false;
    std::byte* recv_base = nullptr;
    std::size_t recv_stride = 0;
    std::uint32_t recv_buffer_size = 0;  // what the kernel may fill: header + payload_size_max
    std::uint32_t recv_count = 0;
    std::unique_ptr<std::uint64_t[]> recv_held_bits;  // one bit per buffer the caller holds
    std::size_t recv_held_count = 0;
    msghdr recv_msg{};
    bool recv_armed = false;
    // An error met while harvesting after packets were already taken: the caller gets the
    // packets first and this on its next call.
    bool recv_error_pending = false;
    error recv_error{errc::io, {}};

    // Send.
    io_uring send_ring{};
    bool send_ring_ready = false;
    buffer_pool send_pool;
    std::unique_ptr<send_op[]> ops;
    std::unique_ptr<std::uint32_t[]> free_ops;  // stack of free slot indices
    std::size_t op_count = 0;
    std::size_t free_op_count = 0;
    std::unique_ptr<send_item[]> retry;  // FIFO, capacity send_buffer_count: it cannot fill
    std::size_t retry_capacity = 0;
    std::size_t retry_head = 0;
    std::size_t retry_count = 0;
    bool gso_active = false;
    bool gso_confirmed = false;  // one GSO send succeeded: later failures are not "refused"
    bool send_error_pending = false;
    error send_error{errc::io, {}};

    explicit state(buffer_pool&& pool) noexcept : send_pool(std::move(pool)) {}
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state();

    status open_socket() noexcept;
    status setup_recv() noexcept;
    status setup_send() noexcept;

    status arm_recv() noexcept;
    std::size_t harvest(packet* out, std::size_t count) noexcept;
    void give_back(std::uint32_t buffer_id) noexcept;

    void reap_sends() noexcept;
    void finish_op(std::uint32_t slot, int res) noexcept;
    std::size_t group_size(const send_item* items, std::size_t count) const noexcept;
    void queue_op(const send_item* items, std::size_t count) noexcept;
    void drain_retry() noexcept;
    status submit_sends() noexcept;
    void shutdown() noexcept;
};

// --- socket ------------------------------------------------------------------------------

namespace {

status set_int_option(int fd, int level, int name, int value, const char* what,
                      const addr_text& group, std::uint16_t port) noexcept {
    if (setsockopt(fd, level, name, &value, sizeof value) != 0) {
        return error::format(errc::io, errno, "setsockopt {} on {}:{}", what, group.text, port);
    }
    return ok();
}

// Asks for a socket buffer of `bytes`: forced past the sysctl limit when we may (root,
// CAP_NET_ADMIN), else as much as net.core.[rw]mem_max allows.
status set_buffer_size(int fd, int force_name, int name, std::size_t bytes, const char* what,
                       const addr_text& group, std::uint16_t port) noexcept {
    // The kernel doubles the value for its bookkeeping; keep the doubled value an int.
    const int value = static_cast<int>(std::min<std::size_t>(bytes, INT32_MAX / 2));
    if (setsockopt(fd, SOL_SOCKET, force_name, &value, sizeof value) == 0) {
        return ok();
    }
    if (errno != EPERM) {
        return error::format(errc::io, errno, "setsockopt {}FORCE {} bytes on {}:{}", what, value,
                             group.text, port);
    }
    return set_int_option(fd, SOL_SOCKET, name, value, what, group, port);
}

}  // namespace

status udp_uring::state::open_socket() noexcept {
    const addr_text group(config.group);
    const bool multicast = IN_MULTICAST(ntohl(config.group.s_addr));

    unsigned interface_index = 0;
    if (!config.interface_name.empty()) {
        interface_index = if_nametoindex(config.interface_name.c_str());
        if (interface_index == 0) {
            return error::format(errc::not_found, errno,
                                 "interface '{}' for {}:{} not found (see `ip link`)",
                                 config.interface_name, group.text, config.port);
        }
    }

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return error::format(errc::io, errno, "socket for {}:{}", group.text, config.port);
    }
    // Several receivers on one host bind the same group and port.
    SHOAL_RETURN_IF_ERROR(
        set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", group, config.port));
    SHOAL_RETURN_IF_ERROR(set_buffer_size(fd, SO_RCVBUFFORCE, SO_RCVBUF, config.socket_buffer_bytes,
                                          "SO_RCVBUF", group, config.port));
    SHOAL_RETURN_IF_ERROR(set_buffer_size(fd, SO_SNDBUFFORCE, SO_SNDBUF, config.socket_buffer_bytes,
                                          "SO_SNDBUF", group, config.port));

    // Bound to the group, the socket hears only that group; a unicast "group" (tests) is
    // the peer's address, so we listen on every local address.
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(config.port);
    local.sin_addr.s_addr = multicast ? config.group.s_addr : htonl(INADDR_ANY);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
        return error::format(errc::io, errno, "bind {}:{}", addr_text(local.sin_addr).text,
                             config.port);
    }

    destination.sin_family = AF_INET;
    destination.sin_port = htons(config.port);
    destination.sin_addr = config.group;

    if (!multicast) {
        return ok();
    }

    ip_mreqn request{};
    request.imr_multiaddr = config.group;
    request.imr_address = config.interface_address;
    request.imr_ifindex = static_cast<int>(interface_index);
    const char* on = config.interface_name.empty() ? nullptr : config.interface_name.c_str();
    const addr_text interface_text(config.interface_address);
    if (on == nullptr) {
        on = config.interface_address.s_addr != 0 ? interface_text.text : "the default interface";
    }
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof request) != 0) {
        return error::format(errc::io, errno,
                             "join {} on {} (IP_ADD_MEMBERSHIP; is there a multicast route?)",
                             group.text, on);
    }
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &request, sizeof request) != 0) {
        return error::format(errc::io, errno, "setsockopt IP_MULTICAST_IF {} for {}", on,
                             group.text);
    }
    SHOAL_RETURN_IF_ERROR(set_int_option(fd, IPPROTO_IP, IP_MULTICAST_TTL, config.ttl,
                                         "IP_MULTICAST_TTL", group, config.port));
    SHOAL_RETURN_IF_ERROR(set_int_option(fd, IPPROTO_IP, IP_MULTICAST_LOOP, config.loopback ? 1 : 0,
                                         "IP_MULTICAST_LOOP", group, config.port));
    return ok();
}

// --- rings -------------------------------------------------------------------------------

namespace {

// Sets up a ring, first with the flags that spare us interrupts (task work runs when we
// enter the kernel; the TASKRUN flag tells liburing's peek to enter), then without them
// for kernels older than 5.19.
int init_ring(io_uring* ring, unsigned sq_entry_count, unsigned cq_entry_count) noexcept {
    io_uring_params params{};
    params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL |
                   IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    params.cq_entries = cq_entry_count;
    int ret = io_uring_queue_init_params(sq_entry_count, ring, &params);
    if (ret == -EINVAL) {
        params = io_uring_params{};
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = cq_entry_count;
        ret = io_uring_queue_init_params(sq_entry_count, ring, &params);
    }
    return ret;
}

}  // namespace

status udp_uring::state::setup_recv() noexcept {
    recv_count = static_cast<std::uint32_t>(config.recv_buffer_count);
    // Every buffer may sit in a CQE at once, plus the CQE that ends the multishot; the
    // kernel also wants at least as many CQ entries as SQ entries.
    int ret = init_ring(&recv_ring, recv_sq_entry_count,
                        std::max(2 * recv_count, 2 * recv_sq_entry_count));
    if (ret < 0) {
        return sys_error(ret, "io_uring_queue_init for receive (needs Linux 5.19 or later)");
    }
    recv_ring_ready = true;

    recv_buffer_size = static_cast<std::uint32_t>(recv_header_size + config.payload_size_max);
    recv_stride = round_up(recv_buffer_size, cache_line_size);
    const std::size_t page_size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t ring_size = round_up(recv_count * sizeof(io_uring_buf), page_size);
    recv_mapping_size = ring_size + recv_count * recv_stride;
    void* mapping = mmap(nullptr, recv_mapping_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) {
        const int mmap_errno = errno;
        const std::size_t size = recv_mapping_size;
        recv_mapping_size = 0;
        return error::format(errc::no_space, mmap_errno, "mmap {} bytes for {} receive buffers",
                             size, recv_count);
    }
    recv_mapping = mapping;
    buf_ring = static_cast<io_uring_buf_ring*>(mapping);
    recv_base = static_cast<std::byte*>(mapping) + ring_size;

    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(buf_ring);
    reg.ring_entries = recv_count;
    reg.bgid = recv_buffer_group;
    ret = io_uring_register_buf_ring(&recv_ring, &reg, 0);
    if (ret < 0) {
        return error(ret == -EINVAL ? errc::unsupported : errc::io, -ret,
                     "io_uring_register_buf_ring (provided-buffer rings need Linux 5.19)");
    }
    buf_ring_registered = true;
    io_uring_buf_ring_init(buf_ring);
    const int mask = io_uring_buf_ring_mask(recv_count);
    for (std::uint32_t i = 0; i < recv_count; ++i) {
        io_uring_buf_ring_add(buf_ring, recv_base + i * recv_stride, recv_buffer_size,
                              static_cast<unsigned short>(i), mask, static_cast<int>(i));
    }
    io_uring_buf_ring_advance(buf_ring, static_cast<int>(recv_count));

    recv_held_bits.reset(new (std::nothrow) std::uint64_t[(recv_count + 63) / 64]());
    if (!recv_held_bits) {
        return error(errc::no_space, "cannot allocate receive bookkeeping");
    }
    // The kernel writes the sender's address after io_uring_recvmsg_out; no control data.
    recv_msg.msg_namelen = sizeof(sockaddr_in);
    recv_msg.msg_controllen = 0;
    return arm_recv();
}

status udp_uring::state::setup_send() noexcept {
    op_count = std::min(config.send_buffer_count, send_op_count_max);
    int ret =
        init_ring(&send_ring, static_cast<unsigned>(op_count), static_cast<unsigned>(2 * op_count));
    if (ret < 0) {
        return sys_error(ret, "io_uring_queue_init for send");
    }
    send_ring_ready = true;
    ops.reset(new (std::nothrow) send_op[op_count]);
    free_ops.reset(new (std::nothrow) std::uint32_t[op_count]);
    retry_capacity = config.send_buffer_count;
    retry.reset(new (std::nothrow) send_item[retry_capacity]);
    if (!ops || !free_ops || !retry) {
        return error(errc::no_space, "cannot allocate send operations");
    }
    for (std::size_t i = 0; i < op_count; ++i) {
        free_ops[i] = static_cast<std::uint32_t>(op_count - 1 - i);
        send_op& op = ops[i];
        op.msg.msg_name = &destination;
        op.msg.msg_namelen = sizeof destination;
        op.msg.msg_iov = op.iov;
    }
    free_op_count = op_count;
    gso_active = config.use_gso;
    return ok();
}

udp_uring::state::~state() { shutdown(); }

void udp_uring::state::shutdown() noexcept {
    const time::deadline give_up = time::deadline::after_ns(shutdown_wait_ns);
    // The multishot recvmsg may still write into our buffers: cancel it and wait for its
    // last completion before unmapping them.
    if (recv_ring_ready && recv_armed) {
        if (io_uring_sqe* sqe = io_uring_get_sqe(&recv_ring)) {
            io_uring_prep_cancel64(sqe, recv_user_data, 0);
            io_uring_sqe_set_data64(sqe, cancel_user_data);
            io_uring_submit(&recv_ring);
        }
        while (recv_armed && !give_up.expired()) {
            io_uring_cqe* cqe = nullptr;
            const std::int64_t left_ns = give_up.remaining_ns(time::monotonic_ns());
            __kernel_timespec ts{left_ns / time::ns_per_s, left_ns % time::ns_per_s};
            if (io_uring_wait_cqe_timeout(&recv_ring, &cqe, &ts) != 0) {
                break;
            }
            if (cqe->user_data == recv_user_data && (cqe->flags & IORING_CQE_F_MORE) == 0) {
                recv_armed = false;
            }
            io_uring_cqe_seen(&recv_ring, cqe);
        }
    }
    // Sends in flight read from the pool's buffers. Those waiting for socket buffer space
    // would wait forever: cancel them, then wait for every slot to come back.
    if (send_ring_ready) {
        if (free_op_count < op_count) {
            if (io_uring_sqe* sqe = io_uring_get_sqe(&send_ring)) {
                io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
                io_uring_sqe_set_data64(sqe, send_cancel_user_data);
                io_uring_submit(&send_ring);
            }
        }
        while (free_op_count < op_count && !give_up.expired()) {
            io_uring_cqe* cqe = nullptr;
            const std::int64_t left_ns = give_up.remaining_ns(time::monotonic_ns());
            __kernel_timespec ts{left_ns / time::ns_per_s, left_ns % time::ns_per_s};
            if (io_uring_wait_cqe_timeout(&send_ring, &cqe, &ts) != 0) {
                break;
            }
            reap_sends();
        }
        io_uring_queue_exit(&send_ring);
        send_ring_ready = false;
    }
    if (recv_ring_ready) {
        if (buf_ring_registered) {
            io_uring_unregister_buf_ring(&recv_ring, recv_buffer_group);
        }
        io_uring_queue_exit(&recv_ring);
        recv_ring_ready = false;
    }
    if (fd >= 0) {
        close(fd);
        fd = -1;
    }
    if (recv_mapping != nullptr) {
        munmap(recv_mapping, recv_mapping_size);
        recv_mapping = nullptr;
    }
}

// --- receive -----------------------------------------------------------------------------

status udp_uring::state::arm_recv() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&recv_ring);
    // The receive ring carries only this request and its cancel: a full SQ is a bug.
    SHOAL_ASSERT(sqe != nullptr);
    io_uring_prep_recvmsg_multishot(sqe, fd, &recv_msg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = recv_buffer_group;
    io_uring_sqe_set_data64(sqe, recv_user_data);
    const int ret = io_uring_submit(&recv_ring);
    if (ret < 0) {
        return sys_error(ret, "io_uring_submit multishot recvmsg");
    }
    recv_armed = true;
    return ok();
}

void udp_uring::state::give_back(std::uint32_t buffer_id) noexcept {
    io_uring_buf_ring_add(buf_ring, recv_base + buffer_id * recv_stride, recv_buffer_size,
                          static_cast<unsigned short>(buffer_id),
                          io_uring_buf_ring_mask(recv_count), 0);
    io_uring_buf_ring_advance(buf_ring, 1);
}

std::size_t udp_uring::state::harvest(packet* out, std::size_t count) noexcept {
    std::size_t n = 0;
    io_uring_cqe* cqes[cqe_batch_max];
    while (n < count && !recv_error_pending) {
        const unsigned want =
            static_cast<unsigned>(std::min<std::size_t>(count - n, cqe_batch_max));
        const unsigned got = io_uring_peek_batch_cqe(&recv_ring, cqes, want);
        if (got == 0) {
            break;
        }
        unsigned seen = 0;
        for (; seen < got; ++seen) {
            const io_uring_cqe* cqe = cqes[seen];
            if (cqe->user_data != recv_user_data) {
                continue;  // our cancel's own completion
            }
            if ((cqe->flags & IORING_CQE_F_MORE) == 0) {
                recv_armed = false;
            }
            if (cqe->res < 0) {
                // ENOBUFS: the caller holds every buffer; the datagrams wait in the socket
                // until buffers come back and recv_burst re-arms.
                if (cqe->res == -ENOBUFS) {
                    ++stats.recv_no_buffer;
                } else if (cqe->res != -EINTR && cqe->res != -EAGAIN) {
                    recv_error_pending = true;
                    recv_error = cqe->res == -EINVAL
                                     ? error(errc::unsupported, EINVAL,
                                             "multishot recvmsg refused (needs Linux 6.0)")
                                     : sys_error(cqe->res, "multishot recvmsg");
                    ++seen;
                    break;
                }
                continue;
            }
            SHOAL_ASSERT((cqe->flags & IORING_CQE_F_BUFFER) != 0);
            const std::uint32_t buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            SHOAL_ASSERT(buffer_id < recv_count);
            std::byte* buffer = recv_base + buffer_id * recv_stride;
            io_uring_recvmsg_out* o = io_uring_recvmsg_validate(buffer, cqe->res, &recv_msg);
            if (o == nullptr || (o->flags & MSG_TRUNC) != 0) {
                // Larger than payload_size_max (or a header the kernel cut): not a packet
                // of ours. Its buffer goes straight back.
                ++stats.recv_truncated;
                give_back(buffer_id);
                continue;
            }
            packet& p = out[n++];
            p.data = static_cast<std::byte*>(io_uring_recvmsg_payload(o, &recv_msg));
            p.size = io_uring_recvmsg_payload_length(o, cqe->res, &recv_msg);
            p.buffer_id = buffer_id;
            p.peer = sockaddr_in{};
            std::memcpy(&p.peer, io_uring_recvmsg_name(o),
                        std::min<std::size_t>(o->namelen, sizeof p.peer));
            recv_held_bits[buffer_id / 64] |= std::uint64_t{1} << (buffer_id % 64);
            ++recv_held_count;
            ++stats.packets_received;
        }
        io_uring_cq_advance(&recv_ring, seen);
    }
    return n;
}

// --- send --------------------------------------------------------------------------------

void udp_uring::state::finish_op(std::uint32_t slot, int res) noexcept {
    send_op& op = ops[slot];
    // ENOPROTOOPT: no UDP GSO in this kernel. EIO: the device cannot checksum the
    // segments. EINVAL, or EMSGSIZE since Linux 6.11: a segment is larger than the path MTU
    // (GSO never fragments, a plain send does).
    const bool gso_refused =
        op.gso && !gso_confirmed &&
        (res == -EIO || res == -EINVAL || res == -ENOPROTOOPT || res == -EMSGSIZE);
    if (gso_refused) {
        // Send each packet on its own from now on.
        gso_active = false;
    }
    const bool again = gso_refused || res == -ENOBUFS || res == -EAGAIN || res == -EINTR;
    if (again) {
        for (std::uint32_t i = 0; i < op.packet_count; ++i) {
            // Cannot overflow: the FIFO holds as many items as there are send buffers.
            SHOAL_ASSERT(retry_count < retry_capacity);
            retry[(retry_head + retry_count) % retry_capacity] =
                send_item{op.buffer_index[i], static_cast<std::uint32_t>(op.iov[i].iov_len)};
            ++retry_count;
        }
    } else {
        if (res >= 0) {
            stats.packets_sent += op.packet_count;
            gso_confirmed = gso_confirmed || op.gso;
        } else if (!send_error_pending) {
            // The path is broken; these packets are lost and the caller hears of it.
            send_error_pending = true;
            const addr_text to(destination.sin_addr);
            send_error = error::format(errc::io, -res, "sendmsg {} packets to {}:{}",
                                       op.packet_count, to.text, ntohs(destination.sin_port));
        }
        for (std::uint32_t i = 0; i < op.packet_count; ++i) {
            send_pool.put(send_pool.at(op.buffer_index[i]));
        }
    }
    op.packet_count = 0;
    free_ops[free_op_count++] = slot;
}

void udp_uring::state::reap_sends() noexcept {
    io_uring_cqe* cqes[cqe_batch_max];
    // Each pass frees what it saw; at most op_count completions can be pending.
    for (std::size_t pass = 0; pass <= op_count / cqe_batch_max + 1; ++pass) {
        const unsigned got = io_uring_peek_batch_cqe(&send_ring, cqes, cqe_batch_max);
        for (unsigned i = 0; i < got; ++i) {
            const std::uint64_t slot = io_uring_cqe_get_data64(cqes[i]);
            if (slot == send_cancel_user_data) {
                continue;
            }
            SHOAL_ASSERT(slot < op_count);
            finish_op(static_cast<std::uint32_t>(slot), cqes[i]->res);
        }
        io_uring_cq_advance(&send_ring, got);
        if (got < cqe_batch_max) {
            break;
        }
    }
}

// How many of items[0..count) go into one sendmsg: a run of equal sizes, plus one shorter
// last segment, within the GSO limits. 1 when GSO is off or nothing batches.
std::size_t udp_uring::state::group_size(const send_item* items, std::size_t count) const noexcept {
    if (!gso_active || count < 2 || items[0].size == 0) {
        return 1;
    }
    const std::size_t segment_size = items[0].size;
    const std::size_t limit =
        std::min({gso_segment_count_max, gso_bytes_max / segment_size, count});
    std::size_t n = 1;
    while (n < limit && items[n].size == segment_size) {
        ++n;
    }
    if (n < limit && items[n].size != 0 && items[n].size < segment_size) {
        ++n;  // the kernel allows the last segment to be shorter
    }
    return n;
}

// Puts items[0..count) into one free slot and queues its sendmsg (not yet submitted).
void udp_uring::state::queue_op(const send_item* items, std::size_t count) noexcept {
    SHOAL_DASSERT(free_op_count > 0 && count >= 1 && count <= gso_segment_count_max);
    const std::uint32_t slot = free_ops[--free_op_count];
    send_op& op = ops[slot];
    for (std::size_t i = 0; i < count; ++i) {
        op.buffer_index[i] = items[i].buffer_index;
        op.iov[i].iov_base = send_pool.at(items[i].buffer_index);
        op.iov[i].iov_len = items[i].size;
    }
    op.packet_count = static_cast<std::uint32_t>(count);
    op.msg.msg_iovlen = count;
    op.gso = count > 1;
    if (op.gso) {
        op.msg.msg_control = op.control;
        op.msg.msg_controllen = sizeof op.control;
        cmsghdr* c = CMSG_FIRSTHDR(&op.msg);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto segment_size = static_cast<std::uint16_t>(items[0].size);
        std::memcpy(CMSG_DATA(c), &segment_size, sizeof segment_size);
    } else {
        op.msg.msg_control = nullptr;
        op.msg.msg_controllen = 0;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&send_ring);
    // The SQ has as many entries as there are slots, and each slot uses one.
    SHOAL_ASSERT(sqe != nullptr);
    io_uring_prep_sendmsg(sqe, fd, &op.msg, 0);
    io_uring_sqe_set_data64(sqe, slot);
    ++stats.send_calls;
}

void udp_uring::state::drain_retry() noexcept {
    send_item group[gso_segment_count_max];
    while (retry_count > 0 && free_op_count > 0) {
        // Copy the head out of the circular FIFO so it reads as one array.
        const std::size_t take = std::min(retry_count, gso_segment_count_max);
        for (std::size_t i = 0; i < take; ++i) {
            group[i] = retry[(retry_head + i) % retry_capacity];
        }
        const std::size_t n = group_size(group, take);
        queue_op(group, n);
        retry_head = (retry_head + n) % retry_capacity;
        retry_count -= n;
    }
}

status udp_uring::state::submit_sends() noexcept {
    if (io_uring_sq_ready(&send_ring) == 0) {
        return ok();
    }
    const int ret = io_uring_submit(&send_ring);
    if (ret < 0 && ret != -EAGAIN && ret != -EINTR && ret != -EBUSY) {
        return sys_error(ret, "io_uring_submit sendmsg");
    }
    return ok();  // what did not go in stays queued for the next submit
}

// --- public ------------------------------------------------------------------------------

result<std::unique_ptr<udp_uring>> udp_uring::create(const udp_config& config) noexcept {
    if (config.port == 0) {
        return error(errc::invalid_argument, "udp port 0: choose the session's port");
    }
    if (config.payload_size_max == 0 || config.payload_size_max > udp_payload_size_max) {
        return error::format(errc::invalid_argument, 0,
                             "payload_size_max {} is not within 1..{} bytes",
                             config.payload_size_max, udp_payload_size_max);
    }
    const std::size_t rc = config.recv_buffer_count;
    if (rc == 0 || rc > recv_buffer_count_max || (rc & (rc - 1)) != 0) {
        return error::format(errc::invalid_argument, 0,
                             "recv_buffer_count {} is not a power of two within 1..{}", rc,
                             recv_buffer_count_max);
    }
    if (config.send_buffer_count == 0 || config.send_buffer_count >= send_buffer_tag) {
        return error::format(errc::invalid_argument, 0, "send_buffer_count {} is out of range",
                             config.send_buffer_count);
    }
    if (config.ttl < 0 || config.ttl > 255) {
        return error::format(errc::invalid_argument, 0, "multicast ttl {} is not within 0..255",
                             config.ttl);
    }
    auto pool = buffer_pool::create(config.payload_size_max, config.send_buffer_count);
    if (!pool) {  // not SHOAL_RETURN_IF_ERROR: it copies, and a pool moves only
        return pool.err();
    }
    std::unique_ptr<state> s(new (std::nothrow) state(std::move(*pool)));
    if (!s) {
        return error(errc::no_space, "cannot allocate udp_uring state");
    }
    s->config = config;
    SHOAL_RETURN_IF_ERROR(s->open_socket());
    SHOAL_RETURN_IF_ERROR(s->setup_send());
    SHOAL_RETURN_IF_ERROR(s->setup_recv());
    std::unique_ptr<udp_uring> io(new (std::nothrow) udp_uring(std::move(s)));
    if (!io) {
        return error(errc::no_space, "cannot allocate udp_uring");
    }
    return io;
}

udp_uring::udp_uring(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}

udp_uring::~udp_uring() = default;

std::size_t udp_uring::payload_size_max() const noexcept { return _s->config.payload_size_max; }

const udp_stats& udp_uring::stats() const noexcept { return _s->stats; }

bool udp_uring::gso_active() const noexcept { return _s->gso_active; }

std::size_t udp_uring::alloc_burst(packet* out, std::size_t count) noexcept {
    state& s = *_s;
    // Completed sends are where free buffers come from.
    s.reap_sends();
    std::byte* buffers[cqe_batch_max];
    std::size_t n = 0;
    while (n < count) {
        const std::size_t want = std::min<std::size_t>(count - n, cqe_batch_max);
        const std::size_t got = s.send_pool.get_burst(buffers, want);
        for (std::size_t i = 0; i < got; ++i) {
            packet& p = out[n + i];
            p.data = buffers[i];
            p.size = 0;
            p.buffer_id = s.send_pool.index_of(buffers[i]) | send_buffer_tag;
            p.peer = sockaddr_in{};
        }
        n += got;
        if (got < want) {
            break;
        }
    }
    return n;
}

result<std::size_t> udp_uring::send_burst(packet* packets, std::size_t count) noexcept {
    state& s = *_s;
    s.reap_sends();
    if (s.send_error_pending) {
        s.send_error_pending = false;
        return s.send_error;
    }
    std::size_t accepted = 0;
    bool waited = false;
    // Each round either accepts a packet or ends the call, after at most one short wait
    // for a full queue: the loop is bounded by count.
    while (accepted < count) {
        const std::size_t accepted_before = accepted;
        s.drain_retry();
        send_item group[gso_segment_count_max];
        while (s.retry_count == 0 && s.free_op_count > 0 && accepted < count) {
            const std::size_t take = std::min(count - accepted, gso_segment_count_max);
            for (std::size_t i = 0; i < take; ++i) {
                const packet& p = packets[accepted + i];
                SHOAL_ASSERT_MSG((p.buffer_id & send_buffer_tag) != 0,
                                 "send_burst of a packet not from alloc_burst");
                // A larger size would read past the buffer into the next one.
                SHOAL_ASSERT_MSG(p.size <= s.config.payload_size_max,
                                 "packet of {} bytes exceeds payload_size_max {}", p.size,
                                 s.config.payload_size_max);
                group[i] = send_item{p.buffer_id & ~send_buffer_tag, p.size};
                SHOAL_DASSERT(s.send_pool.at(group[i].buffer_index) == p.data);
            }
            const std::size_t n = s.group_size(group, take);
            s.queue_op(group, n);
            accepted += n;
        }
        SHOAL_RETURN_IF_ERROR(s.submit_sends());
        s.reap_sends();
        if (accepted > accepted_before) {
            continue;
        }
        if (waited) {
            break;
        }
        // Every slot is in flight (the socket's send buffer is full) or the kernel asked
        // for retries: give it a moment, bounded, rather than make the caller spin.
        waited = true;
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{0, send_full_wait_ns};
        const int ret = io_uring_wait_cqe_timeout(&s.send_ring, &cqe, &ts);
        static_cast<void>(ret);  // a timeout is the expected outcome when still full
        s.reap_sends();
    }
    return accepted;
}

result<std::size_t> udp_uring::recv_burst(packet* out, std::size_t count,
                                          std::int64_t timeout_ns) noexcept {
    state& s = *_s;
    if (s.recv_error_pending) {
        s.recv_error_pending = false;
        return s.recv_error;
    }
    const time::deadline give_up = time::deadline::after_ns(timeout_ns > 0 ? timeout_ns : 0);
    std::size_t n = 0;
    for (int wait = 0; n == 0 && wait <= recv_wait_count_max; ++wait) {
        if (!s.recv_armed && s.recv_held_count < s.recv_count) {
            SHOAL_RETURN_IF_ERROR(s.arm_recv());
        }
        n = s.harvest(out, count);
        if (n > 0 || count == 0 || s.recv_error_pending) {
            break;
        }
        if (!s.recv_armed) {
            // With every buffer held by the caller nothing can arrive: do not sleep on it.
            if (s.recv_held_count == s.recv_count) {
                break;
            }
            continue;  // the multishot ended (ENOBUFS): re-arm before sleeping
        }
        const std::int64_t left_ns = give_up.remaining_ns(time::monotonic_ns());
        if (left_ns == 0) {
            break;
        }
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{left_ns / time::ns_per_s, left_ns % time::ns_per_s};
        const int ret = io_uring_wait_cqe_timeout(&s.recv_ring, &cqe, &ts);
        if (ret < 0 && ret != -ETIME && ret != -EINTR) {
            return sys_error(ret, "io_uring_wait_cqe_timeout for receive");
        }
    }
    if (n == 0 && s.recv_error_pending) {
        s.recv_error_pending = false;
        return s.recv_error;
    }
    return n;
}

void udp_uring::release_burst(packet* packets, std::size_t count) noexcept {
    state& s = *_s;
    const int mask = io_uring_buf_ring_mask(s.recv_count);
    int added = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t id = packets[i].buffer_id;
        if ((id & send_buffer_tag) != 0) {
            s.send_pool.put(s.send_pool.at(id & ~send_buffer_tag));
            continue;
        }
        SHOAL_ASSERT_MSG(id < s.recv_count, "release_burst of unknown buffer id {}", id);
        const std::uint64_t bit = std::uint64_t{1} << (id % 64);
        // Putting one buffer in the ring twice would let the kernel fill it for two packets.
        SHOAL_ASSERT_MSG((s.recv_held_bits[id / 64] & bit) != 0, "receive buffer {} released twice",
                         id);
        s.recv_held_bits[id / 64] &= ~bit;
        --s.recv_held_count;
        io_uring_buf_ring_add(s.buf_ring, s.recv_base + id * s.recv_stride, s.recv_buffer_size,
                              static_cast<unsigned short>(id), mask, added);
        ++added;
    }
    if (added > 0) {
        io_uring_buf_ring_advance(s.buf_ring, added);
    }
}

}  // namespace shoal::io
