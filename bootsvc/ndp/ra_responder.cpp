#include "ndp/ra_responder.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace shoal::ndp {

// Solicitations answered per interface per wake-up: a flood costs bounded work.
constexpr int solicitations_per_wake_max = 16;

result<std::unique_ptr<ra_responder>> ra_responder::create(
    const std::vector<std::string>& interfaces) {
    std::unique_ptr<ra_responder> r(new ra_responder());
    for (const auto& name : interfaces) {
        link l;
        l.name = name;
        l.index = ::if_nametoindex(name.c_str());
        if (l.index == 0) {
            return error::format(errc::not_found, errno, "no interface {}", name);
        }
        l.fd.reset(::socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6));
        if (!l.fd.valid()) {
            return error(errc::io, errno, "raw ICMPv6 socket");
        }
        if (::setsockopt(l.fd.get(), SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                         static_cast<socklen_t>(name.size())) != 0) {
            return error::format(errc::io, errno, "bind to {}", name);
        }
        icmp6_filter filter;
        ICMP6_FILTER_SETBLOCKALL(&filter);
        ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
        ::setsockopt(l.fd.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter);
        // Neighbour discovery requires hop limit 255 (RFC 4861 6.1.2).
        int hops = 255;
        ::setsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
        ::setsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops);
        int index = static_cast<int>(l.index);
        ::setsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index);
        ipv6_mreq all_routers{};
        ::inet_pton(AF_INET6, "ff02::2", &all_routers.ipv6mr_multiaddr);
        all_routers.ipv6mr_interface = l.index;
        if (::setsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &all_routers,
                         sizeof all_routers) != 0) {
            return error::format(errc::io, errno, "join ff02::2 on {} (is IPv6 disabled there?)",
                                 name);
        }
        r->_links.push_back(std::move(l));
    }
    r->_stop_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    return r;
}

void ra_responder::stop() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(_stop_fd.get(), &one, sizeof one);
}

void ra_responder::run() {
    std::vector<pollfd> fds(_links.size() + 1);
    for (std::size_t i = 0; i < _links.size(); ++i) {
        fds[i] = {_links[i].fd.get(), POLLIN, 0};
    }
    fds.back() = {_stop_fd.get(), POLLIN, 0};
    for (;;) {
        if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
            log::warn("ndp: poll: {}", std::strerror(errno));
            return;
        }
        if (fds.back().revents != 0) {
            return;
        }
        for (std::size_t i = 0; i < _links.size(); ++i) {
            if (fds[i].revents == 0) {
                continue;
            }
            for (int k = 0; k < solicitations_per_wake_max; ++k) {
                unsigned char buf[1500];
                sockaddr_in6 from{};
                socklen_t len = sizeof from;
                ssize_t got = ::recvfrom(_links[i].fd.get(), buf, sizeof buf, 0,
                                         reinterpret_cast<sockaddr*>(&from), &len);
                if (got < 0) {
                    break;
                }
                if (got < 8 || buf[0] != ND_ROUTER_SOLICIT || buf[1] != 0) {
                    continue;
                }
                // An advertisement with nothing in it: no prefix, not a default router,
                // neither managed nor other configuration. The kernel fills the checksum.
                nd_router_advert ra{};
                ra.nd_ra_type = ND_ROUTER_ADVERT;
                ra.nd_ra_code = 0;
                ra.nd_ra_curhoplimit = 0;
                ra.nd_ra_flags_reserved = 0;
                ra.nd_ra_router_lifetime = 0;
                sockaddr_in6 to{};
                to.sin6_family = AF_INET6;
                ::inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
                to.sin6_scope_id = _links[i].index;
                if (::sendto(_links[i].fd.get(), &ra, sizeof ra, 0,
                             reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
                    log::debug("ndp: {}: advertisement not sent: {}", _links[i].name,
                               std::strerror(errno));
                    continue;
                }
                _answered.fetch_add(1, std::memory_order_relaxed);
                char who[INET6_ADDRSTRLEN] = "?";
                ::inet_ntop(AF_INET6, &from.sin6_addr, who, sizeof who);
                log::debug(
                    "ndp: {}: router solicitation from {} answered with an empty "
                    "advertisement",
                    _links[i].name, who);
            }
        }
    }
}

}  // namespace shoal::ndp
