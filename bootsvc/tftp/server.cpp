#include "tftp/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <queue>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "rootdir/root_dir.h"
#include "rootdir/unique_fd.h"
#include "tftp/file_cache.h"
#include "tftp/protocol.h"

namespace shoal::tftp {

namespace {

using bootsvc::unique_fd;

// Requests read per wake-up before the loop serves transfers again: a flood of requests
// delays transfers by at most this many.
constexpr int requests_per_wake_max = 64;
// ACKs read per transfer per wake-up.
constexpr int acks_per_wake_max = 64;
constexpr int epoll_events_max = 256;
// Netascii reads the file in pieces of this size before converting.
constexpr std::size_t netascii_read_size = 4096;

constexpr std::uint64_t tag_listen = 0;
constexpr std::uint64_t tag_stop = 1;
constexpr std::uint64_t tag_first_transfer = 2;

struct peer_text {
    char text[INET_ADDRSTRLEN + 8];
};

peer_text format_peer(const sockaddr_in& a) noexcept {
    peer_text out{};
    char ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    auto end = fmt::format_to_n(out.text, sizeof out.text - 1, "{}:{}", ip, ntohs(a.sin_port));
    out.text[end.size < sizeof out.text ? end.size : sizeof out.text - 1] = '\0';
    return out;
}

// LF -> CR LF and CR -> CR NUL, read sequentially from a file (RFC 764's NVT ASCII).
class netascii_source {
public:
    // Fills `out` fully unless the file ends; returns the bytes written.
    result<std::size_t> read(int fd, std::span<std::byte> out) {
        std::size_t n = 0;
        while (n < out.size()) {
            if (_pending) {
                out[n++] = static_cast<std::byte>(*_pending);
                _pending.reset();
                continue;
            }
            if (_pos == _len) {
                if (_eof) {
                    break;
                }
                ssize_t got = ::pread(fd, _in.data(), _in.size(), static_cast<off_t>(_offset));
                if (got < 0) {
                    return error(errc::io, errno, "read");
                }
                _offset += static_cast<std::uint64_t>(got);
                _pos = 0;
                _len = static_cast<std::size_t>(got);
                _eof = got == 0;
                continue;
            }
            char c = static_cast<char>(_in[_pos++]);
            if (c == '\n') {
                out[n++] = std::byte{'\r'};
                _pending = '\n';
            } else if (c == '\r') {
                out[n++] = std::byte{'\r'};
                _pending = '\0';
            } else {
                out[n++] = static_cast<std::byte>(c);
            }
        }
        return n;
    }

private:
    std::vector<std::byte> _in = std::vector<std::byte>(netascii_read_size);
    std::size_t _pos = 0;
    std::size_t _len = 0;
    std::uint64_t _offset = 0;
    bool _eof = false;
    std::optional<char> _pending;
};

struct transfer {
    unique_fd sock;
    std::shared_ptr<const shared_file> file;
    std::string filename;  // for logs
    sockaddr_in peer{};
    transfer_mode mode = transfer_mode::octet;
    std::uint16_t blksize = blksize_default;
    std::uint16_t windowsize = 1;
    std::int64_t timeout_ns = 0;

    // The OACK, kept for retransmission until ACK 0 arrives.
    std::vector<std::byte> oack;
    bool oack_pending = false;

    // The window: blocks base_block .. base_block + filled - 1, each at a stride of
    // header_size + blksize in `buf` with its header in front, ready to send.
    std::vector<std::byte> buf;
    std::vector<std::uint32_t> block_size;  // data bytes of each block in the window
    std::uint64_t base_block = 1;           // 64-bit: block numbers on the wire wrap at 65536
    std::uint32_t filled = 0;
    bool source_done = false;  // the last block (shorter than blksize) is in the window
    std::uint64_t file_offset = 0;
    std::optional<netascii_source> ascii;

    std::vector<mmsghdr> msgs;
    std::vector<iovec> iovs;

    std::int64_t deadline_ns = 0;
    bool in_timer_heap = false;
    std::uint32_t retries = 0;
    std::uint32_t retransmits = 0;
    std::uint64_t bytes_sent = 0;
    std::int64_t started_ns = 0;
    std::uint32_t generation = 0;

    std::size_t stride() const noexcept { return header_size + blksize; }
    std::byte* block_ptr(std::uint32_t i) noexcept { return buf.data() + i * stride(); }
};

struct timer_entry {
    std::int64_t deadline_ns;
    std::uint32_t slot;
    std::uint32_t generation;
    bool operator>(const timer_entry& o) const noexcept { return deadline_ns > o.deadline_ns; }
};

struct atomic_stats {
    std::atomic<std::uint64_t> requests{0}, refused{0}, completed{0}, failed{0}, option_probes{0},
        retransmitted_packets{0}, bytes_sent{0}, file_cache_hits{0}, file_cache_misses{0},
        active{0};
};

void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace

class server::impl {
public:
    impl(server_config config, bootsvc::root_dir root)
        : _config(std::move(config)),
          _root(std::move(root)),
          _files(_root, _config.idle_files_max) {}

    status open_sockets();
    status run();
    void stop() noexcept {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(_stop_fd.get(), &one, sizeof one);
    }
    std::uint16_t port() const noexcept { return _port; }
    server_stats stats() const noexcept;

private:
    void on_requests();
    void on_request(std::span<const std::byte> packet, const sockaddr_in& peer,
                    const in_addr& local);
    void send_request_error(const sockaddr_in& peer, const in_addr& local, error_code code,
                            std::string_view message);
    void on_transfer_readable(std::uint32_t slot);
    void on_timers(std::int64_t now_ns);
    status fill_window(transfer& t);
    void send_window(transfer& t);
    void send_oack(transfer& t);
    void arm(std::uint32_t slot, transfer& t);
    enum class end { complete, probe, failed };
    void finish(std::uint32_t slot, std::string_view outcome, end how);
    int next_timeout_ms(std::int64_t now_ns);

    server_config _config;
    bootsvc::root_dir _root;
    file_cache _files;
    unique_fd _listen_fd;
    unique_fd _epoll_fd;
    unique_fd _stop_fd;
    std::uint16_t _port = 0;

    std::vector<std::unique_ptr<transfer>> _slots;
    std::vector<std::uint32_t> _free_slots;
    std::uint32_t _generation = 0;
    std::priority_queue<timer_entry, std::vector<timer_entry>, std::greater<>> _timers;
    atomic_stats _stats;
    std::vector<std::byte> _packet = std::vector<std::byte>(packet_size_max);
};

status server::impl::open_sockets() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(_config.port);
    if (::inet_pton(AF_INET, _config.address.c_str(), &addr.sin_addr) != 1) {
        return error::format(errc::invalid_argument, 0,
                             "tftp: listen address '{}' is not an IPv4 address", _config.address);
    }
    _listen_fd.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!_listen_fd.valid()) {
        return error(errc::io, errno, "tftp: socket");
    }
    int on = 1;
    ::setsockopt(_listen_fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    // The address each request was sent to: transfers answer from it, so a client on one
    // of several interfaces hears back from the address it asked.
    if (::setsockopt(_listen_fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0) {
        return error(errc::io, errno, "tftp: IP_PKTINFO");
    }
    if (::bind(_listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return error::format(errc::io, errno,
                             "tftp: cannot listen on {}:{}/udp (is another TFTP server running?)",
                             _config.address, _config.port);
    }
    socklen_t len = sizeof addr;
    ::getsockname(_listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    _port = ntohs(addr.sin_port);

    _epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
    _stop_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!_epoll_fd.valid() || !_stop_fd.valid()) {
        return error(errc::io, errno, "tftp: epoll/eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag_listen;
    ::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_ADD, _listen_fd.get(), &ev);
    ev.data.u64 = tag_stop;
    ::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_ADD, _stop_fd.get(), &ev);
    _slots.reserve(_config.transfers_max);
    return ok();
}

server_stats server::impl::stats() const noexcept {
    server_stats s;
    s.requests = _stats.requests.load(std::memory_order_relaxed);
    s.refused = _stats.refused.load(std::memory_order_relaxed);
    s.completed = _stats.completed.load(std::memory_order_relaxed);
    s.failed = _stats.failed.load(std::memory_order_relaxed);
    s.option_probes = _stats.option_probes.load(std::memory_order_relaxed);
    s.retransmitted_packets = _stats.retransmitted_packets.load(std::memory_order_relaxed);
    s.bytes_sent = _stats.bytes_sent.load(std::memory_order_relaxed);
    s.file_cache_hits = _stats.file_cache_hits.load(std::memory_order_relaxed);
    s.file_cache_misses = _stats.file_cache_misses.load(std::memory_order_relaxed);
    s.active = _stats.active.load(std::memory_order_relaxed);
    return s;
}

int server::impl::next_timeout_ms(std::int64_t now_ns) {
    if (_timers.empty()) {
        return -1;
    }
    std::int64_t wait_ns = _timers.top().deadline_ns - now_ns;
    if (wait_ns <= 0) {
        return 0;
    }
    return static_cast<int>((wait_ns + time::ns_per_ms - 1) / time::ns_per_ms);
}

status server::impl::run() {
    epoll_event events[epoll_events_max];
    for (;;) {
        int n = ::epoll_wait(_epoll_fd.get(), events, epoll_events_max,
                             next_timeout_ms(time::monotonic_ns()));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error(errc::io, errno, "tftp: epoll_wait");
        }
        bool requests_ready = false;
        for (int i = 0; i < n; ++i) {
            std::uint64_t tag = events[i].data.u64;
            if (tag == tag_stop) {
                log::debug("tftp: stopping with {} transfers under way",
                           _stats.active.load(std::memory_order_relaxed));
                return ok();
            }
            if (tag == tag_listen) {
                requests_ready = true;
                continue;
            }
            auto slot = static_cast<std::uint32_t>(tag & 0xffffffffu) -
                        static_cast<std::uint32_t>(tag_first_transfer);
            auto gen = static_cast<std::uint32_t>(tag >> 32);
            if (slot < _slots.size() && _slots[slot] && _slots[slot]->generation == gen) {
                on_transfer_readable(slot);
            }
        }
        // Transfers first, then new requests: an ERROR ending a transfer is seen before
        // the same client's next request (OVMF's probe, then its real request).
        if (requests_ready) {
            on_requests();
        }
        on_timers(time::monotonic_ns());
    }
}

void server::impl::on_requests() {
    for (int i = 0; i < requests_per_wake_max; ++i) {
        sockaddr_in peer{};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))];
        iovec iov{_packet.data(), _packet.size()};
        msghdr msg{};
        msg.msg_name = &peer;
        msg.msg_namelen = sizeof peer;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t got = ::recvmsg(_listen_fd.get(), &msg, 0);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log::warn("tftp: receiving requests: {}", std::strerror(errno));
            }
            return;
        }
        in_addr local{};
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                in_pktinfo info{};
                std::memcpy(&info, CMSG_DATA(c), sizeof info);
                local = info.ipi_addr;
            }
        }
        bump(_stats.requests);
        on_request(std::span<const std::byte>(_packet.data(), static_cast<std::size_t>(got)), peer,
                   local);
    }
}

void server::impl::send_request_error(const sockaddr_in& peer, const in_addr& local,
                                      error_code code, std::string_view message) {
    bump(_stats.refused);
    std::byte out[512];
    std::size_t size = encode_error(out, code, message);
    iovec iov{out, size};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))] = {};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr_in*>(&peer);
    msg.msg_namelen = sizeof peer;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (local.s_addr != 0) {
        // Answer from the address the request was sent to.
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
        in_pktinfo info{};
        info.ipi_spec_dst = local;
        std::memcpy(CMSG_DATA(c), &info, sizeof info);
    }
    if (::sendmsg(_listen_fd.get(), &msg, MSG_DONTWAIT) < 0) {
        log::debug("tftp: {} error reply not sent: {}", format_peer(peer).text,
                   std::strerror(errno));
    }
}

void server::impl::on_request(std::span<const std::byte> packet, const sockaddr_in& peer,
                              const in_addr& local) {
    auto who = format_peer(peer);
    auto parsed = parse_request(packet);
    if (!parsed) {
        // Not even an error reply to what is not a request: a stray ACK or DATA sent to
        // port 69 would otherwise be answered forever between two confused peers.
        auto op = packet_opcode(packet);
        if (op && (*op == opcode::rrq || *op == opcode::wrq)) {
            log::info("tftp: {} bad request: {}", who.text, parsed.err().describe());
            send_request_error(peer, local, error_code::illegal_operation, parsed.err().context());
        } else {
            log::debug("tftp: {} ignored a {}-byte packet that is not a request", who.text,
                       packet.size());
        }
        return;
    }
    const request& r = *parsed;
    if (r.op == opcode::wrq) {
        log::info("tftp: {} write request for '{}' refused: this server is read-only", who.text,
                  r.filename);
        send_request_error(peer, local, error_code::access_violation, "read-only server");
        return;
    }
    if (spdlog::should_log(spdlog::level::debug)) {
        log::debug("tftp: {} RRQ '{}' {}{}{}{}{}", who.text, r.filename,
                   r.mode == transfer_mode::octet ? "octet" : "netascii",
                   r.blksize ? fmt::format(" blksize={}", *r.blksize) : std::string(),
                   r.tsize ? fmt::format(" tsize={}", *r.tsize) : std::string(),
                   r.timeout_s ? fmt::format(" timeout={}", *r.timeout_s) : std::string(),
                   r.windowsize ? fmt::format(" windowsize={}", *r.windowsize) : std::string());
    }

    if (_stats.active.load(std::memory_order_relaxed) >= _config.transfers_max) {
        log::warn("tftp: {} refused '{}': {} transfers under way (transfers_max)", who.text,
                  r.filename, _config.transfers_max);
        send_request_error(peer, local, error_code::not_defined, "server busy, try again");
        return;
    }

    auto file = _files.open(r.filename);
    _stats.file_cache_hits.store(_files.hit_count(), std::memory_order_relaxed);
    _stats.file_cache_misses.store(_files.miss_count(), std::memory_order_relaxed);
    if (!file) {
        const error& e = file.err();
        if (e.code() == errc::not_found) {
            log::info("tftp: {} '{}' not found under {}", who.text, r.filename, _root.path());
            send_request_error(peer, local, error_code::file_not_found, "file not found");
        } else if (e.code() == errc::invalid_argument) {
            log::warn("tftp: {} refused '{}': {}", who.text, r.filename, e.describe());
            send_request_error(peer, local, error_code::access_violation, "access violation");
        } else {
            log::warn("tftp: {} cannot open '{}' under {}: {}", who.text, r.filename, _root.path(),
                      e.describe());
            send_request_error(peer, local, error_code::access_violation, "cannot open file");
        }
        return;
    }

    auto t = std::make_unique<transfer>();
    t->sock.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in bind_addr{};
    bind_addr.sin_family = AF_INET;
    bind_addr.sin_addr = local;
    if (!t->sock.valid() ||
        ::bind(t->sock.get(), reinterpret_cast<sockaddr*>(&bind_addr), sizeof bind_addr) != 0 ||
        ::connect(t->sock.get(), reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0) {
        log::warn("tftp: {} no socket for the transfer of '{}': {}", who.text, r.filename,
                  std::strerror(errno));
        send_request_error(peer, local, error_code::not_defined, "server out of sockets");
        return;
    }
    t->file = std::move(*file);
    t->filename.assign(r.filename);
    t->peer = peer;
    t->mode = r.mode;
    if (r.mode == transfer_mode::netascii) {
        t->ascii.emplace();
    }

    option_reply reply;
    if (r.blksize) {
        t->blksize = std::min(*r.blksize, _config.blksize_max);
        reply.blksize = t->blksize;
    }
    if (r.timeout_s) {
        reply.timeout_s = *r.timeout_s;
    }
    // The size after netascii conversion is unknown without reading the whole file, so
    // tsize is offered for octet transfers only (tftp-hpa does the same).
    // An empty file's size is left out too: curl refuses "tsize 0" in an OACK and aborts
    // (curl 7.88 "invalid tsize value in OACK packet"); leaving an option out is always
    // allowed (RFC 2347).
    if (r.tsize && r.mode == transfer_mode::octet && t->file->size_bytes() > 0) {
        reply.tsize = t->file->size_bytes();
    }
    if (r.windowsize) {
        std::uint32_t by_bytes = std::max<std::uint32_t>(1, _config.window_bytes_max / t->blksize);
        t->windowsize = static_cast<std::uint16_t>(
            std::min<std::uint32_t>({*r.windowsize, _config.windowsize_max, by_bytes}));
        reply.windowsize = t->windowsize;
    }
    t->timeout_ns = (r.timeout_s ? static_cast<std::int64_t>(*r.timeout_s) * time::ns_per_s
                                 : static_cast<std::int64_t>(_config.timeout_ms) * time::ns_per_ms);

    t->buf.resize(static_cast<std::size_t>(t->windowsize) * t->stride());
    t->block_size.resize(t->windowsize);
    t->msgs.resize(t->windowsize);
    t->iovs.resize(t->windowsize);
    // Room in the socket for a whole window, so one sendmmsg rarely stops short.
    int sndbuf = static_cast<int>(std::min<std::size_t>(t->buf.size() * 2, 4u << 20));
    ::setsockopt(t->sock.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    t->started_ns = time::monotonic_ns();

    std::uint32_t slot;
    if (!_free_slots.empty()) {
        slot = _free_slots.back();
        _free_slots.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(_slots.size());
        _slots.emplace_back();
    }
    t->generation = ++_generation;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = (static_cast<std::uint64_t>(t->generation) << 32) | (slot + tag_first_transfer);
    ::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_ADD, t->sock.get(), &ev);
    _slots[slot] = std::move(t);
    transfer& tr = *_slots[slot];
    bump(_stats.active);

    if (reply.blksize || reply.tsize || reply.timeout_s || reply.windowsize) {
        tr.oack.resize(512);
        tr.oack.resize(encode_oack(tr.oack, reply));
        tr.oack_pending = true;
        log::debug(
            "tftp: {} OACK '{}'{}{}{}{}", who.text, tr.filename,
            reply.blksize ? fmt::format(" blksize={}", *reply.blksize) : std::string(),
            reply.tsize ? fmt::format(" tsize={}", *reply.tsize) : std::string(),
            reply.timeout_s ? fmt::format(" timeout={}", *reply.timeout_s) : std::string(),
            reply.windowsize ? fmt::format(" windowsize={}", *reply.windowsize) : std::string());
        send_oack(tr);
    } else {
        if (auto s = fill_window(tr); !s) {
            log::warn("tftp: {} reading '{}': {}", who.text, tr.filename, s.err().describe());
            finish(slot, "read error", end::failed);
            return;
        }
        send_window(tr);
    }
    arm(slot, tr);
}

status server::impl::fill_window(transfer& t) {
    std::uint32_t want = t.windowsize - t.filled;
    if (t.source_done || want == 0) {
        return ok();
    }
    if (t.ascii) {
        while (t.filled < t.windowsize && !t.source_done) {
            std::uint32_t i = t.filled;
            auto got = t.ascii->read(t.file->fd(),
                                     std::span<std::byte>(t.block_ptr(i) + header_size, t.blksize));
            if (!got) {
                return got.err();
            }
            t.block_size[i] = static_cast<std::uint32_t>(*got);
            t.source_done = *got < t.blksize;
            ++t.filled;
        }
    } else {
        // One preadv fills every free block of the window straight into its packet.
        for (std::uint32_t k = 0; k < want; ++k) {
            t.iovs[k].iov_base = t.block_ptr(t.filled + k) + header_size;
            t.iovs[k].iov_len = t.blksize;
        }
        ssize_t got = ::preadv(t.file->fd(), t.iovs.data(), static_cast<int>(want),
                               static_cast<off_t>(t.file_offset));
        if (got < 0) {
            return error(errc::io, errno, "read");
        }
        auto left = static_cast<std::uint64_t>(got);
        t.file_offset += left;
        for (std::uint32_t k = 0; k < want && !t.source_done; ++k) {
            auto size = static_cast<std::uint32_t>(std::min<std::uint64_t>(left, t.blksize));
            left -= size;
            t.block_size[t.filled] = size;
            ++t.filled;
            // A short block ends the transfer; a file that is a whole number of blocks ends
            // with an empty one.
            t.source_done = size < t.blksize;
        }
    }
    for (std::uint32_t i = 0; i < t.filled; ++i) {
        encode_header(std::span<std::byte, header_size>(t.block_ptr(i), header_size), opcode::data,
                      static_cast<std::uint16_t>((t.base_block + i) & 0xffff));
    }
    return ok();
}

void server::impl::send_oack(transfer& t) {
    if (::send(t.sock.get(), t.oack.data(), t.oack.size(), MSG_DONTWAIT) < 0 && errno != EAGAIN &&
        errno != ENOBUFS) {
        log::debug("tftp: {} sending OACK: {}", format_peer(t.peer).text, std::strerror(errno));
    }
}

void server::impl::send_window(transfer& t) {
    for (std::uint32_t i = 0; i < t.filled; ++i) {
        t.iovs[i].iov_base = t.block_ptr(i);
        t.iovs[i].iov_len = header_size + t.block_size[i];
        t.msgs[i] = {};
        t.msgs[i].msg_hdr.msg_iov = &t.iovs[i];
        t.msgs[i].msg_hdr.msg_iovlen = 1;
    }
    std::uint32_t sent = 0;
    while (sent < t.filled) {
        int n = ::sendmmsg(t.sock.get(), t.msgs.data() + sent, t.filled - sent, MSG_DONTWAIT);
        if (n <= 0) {
            // A full socket buffer or a refused port: the timer sends the window again,
            // and a refused port shows up on the next receive as ECONNREFUSED.
            break;
        }
        for (int k = 0; k < n; ++k) {
            t.bytes_sent += t.block_size[sent + static_cast<std::uint32_t>(k)];
            bump(_stats.bytes_sent, t.block_size[sent + static_cast<std::uint32_t>(k)]);
        }
        sent += static_cast<std::uint32_t>(n);
    }
}

void server::impl::arm(std::uint32_t slot, transfer& t) {
    t.deadline_ns = time::monotonic_ns() + t.timeout_ns;
    // One heap entry per transfer: a deadline pushed later is found when the entry pops.
    if (!t.in_timer_heap) {
        _timers.push({t.deadline_ns, slot, t.generation});
        t.in_timer_heap = true;
    }
}

void server::impl::on_timers(std::int64_t now_ns) {
    while (!_timers.empty() && _timers.top().deadline_ns <= now_ns) {
        timer_entry e = _timers.top();
        _timers.pop();
        if (e.slot >= _slots.size() || !_slots[e.slot] ||
            _slots[e.slot]->generation != e.generation) {
            continue;
        }
        transfer& t = *_slots[e.slot];
        t.in_timer_heap = false;
        if (t.deadline_ns > now_ns) {
            _timers.push({t.deadline_ns, e.slot, t.generation});
            t.in_timer_heap = true;
            continue;
        }
        if (t.retries >= _config.retries_max) {
            finish(e.slot, fmt::format("no answer after {} retransmissions", t.retries),
                   end::failed);
            continue;
        }
        ++t.retries;
        ++t.retransmits;
        if (t.oack_pending) {
            bump(_stats.retransmitted_packets);
            send_oack(t);
        } else {
            bump(_stats.retransmitted_packets, t.filled);
            send_window(t);
        }
        arm(e.slot, t);
    }
}

void server::impl::on_transfer_readable(std::uint32_t slot) {
    transfer& t = *_slots[slot];
    for (int i = 0; i < acks_per_wake_max; ++i) {
        ssize_t got = ::recv(t.sock.get(), _packet.data(), _packet.size(), MSG_DONTWAIT);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return;
            }
            // ECONNREFUSED: the client's port is closed, it has gone.
            finish(slot, fmt::format("client unreachable ({})", std::strerror(errno)), end::failed);
            return;
        }
        std::span<const std::byte> packet(_packet.data(), static_cast<std::size_t>(got));
        auto op = packet_opcode(packet);
        if (op && *op == opcode::error) {
            auto e = parse_error(packet);
            if (t.oack_pending && e && e->code == error_code::option_refused) {
                // OVMF (and other UEFI PXE stacks) ask with tsize to learn the size, then end
                // the transfer with error 8 and ask again: the expected end of a probe.
                finish(slot, "ended by the client after the OACK (size probe)", end::probe);
            } else {
                finish(slot,
                       fmt::format("client sent error {} '{}'",
                                   e ? static_cast<unsigned>(e->code) : 0u,
                                   e ? e->message : std::string_view("?")),
                       end::failed);
            }
            return;
        }
        auto block = parse_block(packet, opcode::ack);
        if (!block) {
            log::debug("tftp: {} '{}' ignored a packet: {}", format_peer(t.peer).text, t.filename,
                       block.err().describe());
            continue;
        }
        if (t.oack_pending) {
            if (*block != 0) {
                continue;
            }
            t.oack_pending = false;
            t.retries = 0;
            if (auto s = fill_window(t); !s) {
                finish(slot, fmt::format("read error: {}", s.err().describe()), end::failed);
                return;
            }
            send_window(t);
            arm(slot, t);
            continue;
        }
        // Which block of the window this acknowledges (the window is < 65536 blocks, so
        // the 16-bit number is unambiguous within it).
        std::uint32_t acked = 0;
        bool found = false;
        for (std::uint32_t k = 0; k < t.filled; ++k) {
            if (((t.base_block + k) & 0xffff) == *block) {
                acked = k + 1;
                found = true;
                break;
            }
        }
        if (!found) {
            // The block before the window: the client timed out waiting inside a window
            // and asks for all of it again (RFC 7440). With a window of one this is the
            // duplicate ACK of RFC 1350, answered only by our timer (no Sorcerer's
            // Apprentice).
            if (t.windowsize > 1 && ((t.base_block - 1) & 0xffff) == *block) {
                ++t.retransmits;
                bump(_stats.retransmitted_packets, t.filled);
                send_window(t);
                arm(slot, t);
            }
            continue;
        }
        if (t.source_done && acked == t.filled) {
            finish(slot, "complete", end::complete);
            return;
        }
        // Slide: keep the blocks after the acknowledged one, refill, send the whole window
        // (a receiver drops everything after a gap, so the rest is sent again too).
        std::uint32_t keep = t.filled - acked;
        if (keep > 0) {
            std::memmove(t.block_ptr(0), t.block_ptr(acked), keep * t.stride());
            std::memmove(t.block_size.data(), t.block_size.data() + acked,
                         keep * sizeof(std::uint32_t));
            ++t.retransmits;
        }
        t.filled = keep;
        t.base_block += acked;
        t.retries = 0;
        if (auto s = fill_window(t); !s) {
            finish(slot, fmt::format("read error: {}", s.err().describe()), end::failed);
            return;
        }
        send_window(t);
        arm(slot, t);
    }
}

void server::impl::finish(std::uint32_t slot, std::string_view outcome, end how) {
    transfer& t = *_slots[slot];
    std::int64_t ms = (time::monotonic_ns() - t.started_ns) / time::ns_per_ms;
    if (how != end::failed) {
        log::debug("tftp: {} '{}' {}: {} bytes in {} ms, {} retransmissions",
                   format_peer(t.peer).text, t.filename, outcome, t.bytes_sent, ms, t.retransmits);
        bump(how == end::complete ? _stats.completed : _stats.option_probes);
    } else {
        log::info("tftp: {} '{}' failed: {} ({} bytes sent in {} ms)", format_peer(t.peer).text,
                  t.filename, outcome, t.bytes_sent, ms);
        bump(_stats.failed);
    }
    ::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_DEL, t.sock.get(), nullptr);
    _slots[slot].reset();
    _free_slots.push_back(slot);
    _stats.active.fetch_sub(1, std::memory_order_relaxed);
}

result<std::unique_ptr<server>> server::create(const server_config& config) {
    if (config.blksize_max < blksize_min || config.windowsize_max < 1 || config.transfers_max < 1 ||
        config.timeout_ms < 1) {
        return error(errc::invalid_argument,
                     "tftp: blksize_max >= 8, windowsize_max, transfers_max and timeout_ms >= 1");
    }
    auto root = bootsvc::root_dir::open(config.root_dir);
    if (!root) {
        return error::format(root.err().code(), root.err().sys_errno(), "tftp root: {}",
                             root.err().context());
    }
    auto p = std::make_unique<impl>(config, std::move(*root));
    SHOAL_RETURN_IF_ERROR(p->open_sockets());
    return std::unique_ptr<server>(new server(std::move(p)));
}

server::server(std::unique_ptr<impl> p) noexcept : _impl(std::move(p)) {}
server::~server() = default;
status server::run() { return _impl->run(); }
void server::stop() noexcept { _impl->stop(); }
std::uint16_t server::port() const noexcept { return _impl->port(); }
server_stats server::stats() const noexcept { return _impl->stats(); }

}  // namespace shoal::tftp
