#include "dhcp/server.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "common/log.h"
#include "dhcp/leases.h"
#include "dhcp/packet.h"
#include "dhcp/responder.h"

namespace shoal::dhcp {
namespace {

// Datagrams read from one socket before the others get their turn.
constexpr int burst_max = 64;
// How often the loop wakes with nothing to read, to compact the lease file.
constexpr int idle_poll_ms = 1000;
// Receive buffer per socket: a lab powering on at once sends hundreds of DISCOVERs in a burst
// (a few KiB of kernel memory each); the default would drop most of them.
constexpr int receive_buffer_bytes = 4 << 20;

std::int64_t unix_now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

struct interface_info {
    std::string name;
    int index = 0;
    ipv4 address = 0;
    ipv4 mask = 0;
    bool up = false;
};

// The interface's first IPv4 address and whether it is up. Errors name it and the fix.
result<interface_info> lookup(const std::string& name) {
    interface_info info;
    info.name = name;
    info.index = static_cast<int>(::if_nametoindex(name.c_str()));
    if (info.index == 0) {
        return error::format(errc::not_found, errno,
                             "interface {} does not exist (see `ip link`): name the lab interface",
                             name);
    }
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        return error::format(errc::io, errno, "listing the addresses of {}", name);
    }
    for (ifaddrs* a = list; a; a = a->ifa_next) {
        if (name != a->ifa_name) {
            continue;
        }
        info.up = info.up || (a->ifa_flags & IFF_UP);
        if (!info.address && a->ifa_addr && a->ifa_addr->sa_family == AF_INET) {
            info.address = ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr);
            info.mask = a->ifa_netmask
                            ? ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_netmask)->sin_addr.s_addr)
                            : 0xffffff00;
        }
    }
    ::freeifaddrs(list);
    if (!info.address) {
        return error::format(
            errc::not_found, 0,
            "interface {} has no IPv4 address: give it one (ip addr add 10.0.0.1/24 dev {})", name,
            name);
    }
    return info;
}

// A UDP socket on port, bound to the interface's device. Without SO_REUSEADDR (reuse false)
// the bind fails if any other socket holds the port on this device or on all devices, so a
// second DHCP server on the link is found rather than silently sharing its packets; one
// socket per device never conflicts with our own on other devices.
result<int> open_socket(const interface_info& itf, std::uint16_t port, bool reuse) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return error::format(errc::io, errno, "creating a UDP socket for {}", itf.name);
    }
    int one = 1;
    auto fail = [&](const char* what) -> result<int> {
        int e = errno;
        ::close(fd);
        if (e == EADDRINUSE) {
            return error::format(
                errc::exists, e,
                "UDP port {} on {} is taken by another program (another DHCP server? "
                "see `ss -ulpn 'sport = :{}'`): stop it, or run shoal in proxy mode "
                "beside it",
                port, itf.name, port);
        }
        if (e == EACCES || e == EPERM) {
            return error::format(errc::io, e,
                                 "{} for port {} on {}: run as root or grant "
                                 "CAP_NET_BIND_SERVICE and CAP_NET_RAW",
                                 what, port, itf.name);
        }
        return error::format(errc::io, e, "{} for port {} on {}", what, port, itf.name);
    };
    if ((reuse && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) ||
        ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0 ||
        ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) {
        return fail("setting socket options");
    }
    // Best effort: capped by net.core.rmem_max unless we may force it.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes,
                     sizeof receive_buffer_bytes) != 0) {
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    }
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, itf.name.c_str(),
                     static_cast<socklen_t>(itf.name.size())) != 0) {
        return fail("binding to the device (SO_BINDTODEVICE)");
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        return fail("binding");
    }
    return fd;
}

struct listener {
    int fd = -1;
    std::size_t interface_slot = 0;
    std::uint16_t port = 0;
};

class server_impl final : public server {
public:
    explicit server_impl(const config& cfg) : _cfg(cfg) {}

    ~server_impl() override {
        for (auto& l : _listeners) {
            ::close(l.fd);
        }
        if (_stop_fd >= 0) {
            ::close(_stop_fd);
        }
    }

    status init() {
        for (const auto& name : _cfg.interfaces) {
            auto info = lookup(name);
            if (!info) {
                return info.err();
            }
            if (_cfg.server_address) {
                info->address = _cfg.server_address;
            }
            _interfaces.push_back(*info);
        }
        if (_cfg.mode == mode::full) {
            for (const pool& p : _cfg.pools) {
                bool placed = false;
                for (const auto& itf : _interfaces) {
                    ipv4 mask = p.subnet_mask ? p.subnet_mask : itf.mask;
                    placed = placed || ((p.first & mask) == (itf.address & mask) &&
                                        (p.last & mask) == (itf.address & mask));
                }
                if (!placed) {
                    return error::format(
                        errc::invalid_argument, 0,
                        "dhcp pool {} - {} is not on the subnet of any listened interface",
                        format_ipv4(p.first), format_ipv4(p.last));
                }
            }
            auto table = lease_table::open(_cfg, unix_now_s());
            if (!table) {
                return table.err();
            }
            _table.emplace(std::move(*table));
        }
        _responder = std::make_unique<responder>(_cfg, _table ? &*_table : nullptr);
        for (std::size_t i = 0; i < _interfaces.size(); i++) {
            auto fd = open_socket(_interfaces[i], _cfg.server_port, false);
            if (!fd) {
                return fd.err();
            }
            _listeners.push_back({*fd, i, _cfg.server_port});
            if (_cfg.mode == mode::proxy) {
                auto pxe = open_socket(_interfaces[i], _cfg.pxe_port, false);
                if (!pxe) {
                    return pxe.err();
                }
                _listeners.push_back({*pxe, i, _cfg.pxe_port});
            }
        }
        _stop_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (_stop_fd < 0) {
            return error::format(errc::io, errno, "creating the DHCP server's stop eventfd");
        }
        for (const auto& itf : _interfaces) {
            log::info("dhcp: {} mode on {} ({}/{}), ports {}{}",
                      _cfg.mode == mode::full ? "full" : "proxy", itf.name,
                      format_ipv4(itf.address), format_ipv4(itf.mask), _cfg.server_port,
                      _cfg.mode == mode::proxy ? fmt::format(" and {}", _cfg.pxe_port) : "");
        }
        return ok();
    }

    status run() override {
        std::vector<pollfd> fds(_listeners.size() + 1);
        for (std::size_t i = 0; i < _listeners.size(); i++) {
            fds[i] = {_listeners[i].fd, POLLIN, 0};
        }
        fds.back() = {_stop_fd, POLLIN, 0};
        for (;;) {
            int n = ::poll(fds.data(), fds.size(), idle_poll_ms);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return error::format(errc::io, errno, "poll in the DHCP server");
            }
            if (fds.back().revents) {
                std::uint64_t v;
                (void)!::read(_stop_fd, &v, sizeof v);
                return ok();
            }
            for (std::size_t i = 0; i < _listeners.size(); i++) {
                if (fds[i].revents & POLLIN) {
                    drain(_listeners[i]);
                } else if (fds[i].revents & (POLLERR | POLLNVAL)) {
                    return error::format(errc::io, 0, "the DHCP socket on {} port {} failed",
                                         _interfaces[_listeners[i].interface_slot].name,
                                         _listeners[i].port);
                }
            }
            // Housekeeping once a second, busy or idle: the journal's bound and the gauge
            // (which walks the pool, so not per packet).
            if (auto now = unix_now_s(); _table && now != _last_maintenance_s) {
                _last_maintenance_s = now;
                if (auto st = _table->maintain(now); !st) {
                    log::err("dhcp: {}", st.err().describe());
                }
                _responder->count().leases_active.store(_table->bound_count(now),
                                                        std::memory_order_relaxed);
            }
        }
    }

    void stop() noexcept override {
        std::uint64_t one = 1;
        (void)!::write(_stop_fd, &one, sizeof one);
    }

    struct stats stats() const noexcept override {
        return _responder->snapshot();
    }

    std::vector<ipv4> interface_addresses() const override {
        std::vector<ipv4> out;
        for (const auto& itf : _interfaces) {
            out.push_back(itf.address);
        }
        return out;
    }

private:
    void drain(const listener& l) {
        const interface_info& itf = _interfaces[l.interface_slot];
        for (int i = 0; i < burst_max; i++) {
            sockaddr_in from{};
            iovec iov{_rx.data(), _rx.size()};
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))];
            msghdr mh{};
            mh.msg_name = &from;
            mh.msg_namelen = sizeof from;
            mh.msg_iov = &iov;
            mh.msg_iovlen = 1;
            mh.msg_control = control;
            mh.msg_controllen = sizeof control;
            ssize_t n = ::recvmsg(l.fd, &mh, MSG_TRUNC);
            if (n < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    log::warn("dhcp: receiving on {}: {}", itf.name, std::strerror(errno));
                }
                return;
            }
            auto& count = _responder->count();
            count.received.fetch_add(1, std::memory_order_relaxed);
            ipv4 source = ntohl(from.sin_addr.s_addr);
            std::uint16_t source_port = ntohs(from.sin_port);
            if (static_cast<std::size_t>(n) > packet_size_max) {
                count.malformed.fetch_add(1, std::memory_order_relaxed);
                complain("{} bytes from {}:{} on {} is larger than any DHCP message: dropped", n,
                         format_ipv4(source), source_port, itf.name);
                continue;
            }
            if (auto st = decode({_rx.data(), static_cast<std::size_t>(n)}, _msg); !st) {
                count.malformed.fetch_add(1, std::memory_order_relaxed);
                complain("bad DHCP packet from {}:{} on {}: {}: dropped", format_ipv4(source),
                         source_port, itf.name, st.err().context());
                continue;
            }
            arrival in;
            in.interface_index = itf.index;
            in.interface_name = itf.name.c_str();
            in.server_address = itf.address;
            in.interface_mask = itf.mask;
            in.local_port = l.port;
            in.source_address = source;
            in.source_port = source_port;
            auto reply = _responder->handle(_msg, in, unix_now_s(), _tx);
            if (reply) {
                send(l, itf, reply->first, reply->second);
            }
        }
    }

    void send(const listener& l, const interface_info& itf, std::size_t size, destination to) {
        sockaddr_in dst{};
        dst.sin_family = AF_INET;
        dst.sin_port = htons(to.port);
        dst.sin_addr.s_addr = htonl(to.address);
        iovec iov{_tx.data(), size};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))]{};
        msghdr mh{};
        mh.msg_name = &dst;
        mh.msg_namelen = sizeof dst;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
        in_pktinfo pi{};
        pi.ipi_ifindex = itf.index;
        pi.ipi_spec_dst.s_addr = htonl(itf.address);
        std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
        if (::sendmsg(l.fd, &mh, 0) < 0) {
            _responder->count().send_errors.fetch_add(1, std::memory_order_relaxed);
            complain("sending {} bytes to {}:{} on {}: {}", size, format_ipv4(to.address), to.port,
                     itf.name, std::strerror(errno));
        }
    }

    // A warning at most once a second (a flood of junk must not flood the log); the rest at
    // debug level.
    template <class... Args>
    void complain(fmt::format_string<Args...> f, Args&&... args) {
        auto now = unix_now_s();
        std::string text = fmt::format(f, std::forward<Args>(args)...);
        if (now != _last_warning_s) {
            _last_warning_s = now;
            log::warn("dhcp: {}", text);
        } else {
            log::debug("dhcp: {}", text);
        }
    }

    config _cfg;
    std::vector<interface_info> _interfaces;
    std::vector<listener> _listeners;
    std::optional<lease_table> _table;
    std::unique_ptr<responder> _responder;
    int _stop_fd = -1;
    message _msg;
    // One byte more than the largest message, so that an oversized datagram is seen as such.
    std::array<std::uint8_t, packet_size_max + 1> _rx{};
    std::array<std::uint8_t, packet_size_max> _tx{};
    std::int64_t _last_warning_s = 0;
    std::int64_t _last_maintenance_s = 0;
};

}  // namespace

result<std::unique_ptr<server>> server::create(const config& cfg) {
    auto problems = validate(cfg);
    if (!problems.empty()) {
        return error::format(errc::invalid_argument, 0, "{}", problems.front());
    }
    auto s = std::make_unique<server_impl>(cfg);
    SHOAL_RETURN_IF_ERROR(s->init());
    return std::unique_ptr<server>(std::move(s));
}

std::vector<std::string> diagnose(const config& cfg) {
    std::vector<std::string> problems = validate(cfg);
    std::vector<interface_info> found;
    for (const auto& name : cfg.interfaces) {
        auto info = lookup(name);
        if (!info) {
            problems.push_back(fmt::format("dhcp: {}", info.err().describe()));
            continue;
        }
        if (!info->up) {
            problems.push_back(
                fmt::format("dhcp: interface {} is down: ip link set {} up", name, name));
        }
        found.push_back(*info);
        std::vector<std::uint16_t> ports{cfg.server_port};
        if (cfg.mode == mode::proxy) {
            ports.push_back(cfg.pxe_port);
        }
        for (auto port : ports) {
            // Without SO_REUSEADDR, so that any other holder of the port shows.
            auto fd = open_socket(*info, port, false);
            if (!fd) {
                problems.push_back(fmt::format("dhcp: {}", fd.err().describe()));
            } else {
                ::close(*fd);
            }
        }
    }
    if (cfg.mode == mode::full) {
        for (const pool& p : cfg.pools) {
            bool placed = false;
            for (const auto& itf : found) {
                ipv4 mask = p.subnet_mask ? p.subnet_mask : itf.mask;
                placed = placed || (p.first & mask) == (itf.address & mask);
            }
            if (!found.empty() && !placed) {
                problems.push_back(
                    fmt::format("dhcp: pool {} - {} is not on the subnet of any listened "
                                "interface: change the pool or the interfaces",
                                format_ipv4(p.first), format_ipv4(p.last)));
            }
        }
    }
    return problems;
}

}  // namespace shoal::dhcp
