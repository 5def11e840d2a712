#include "tasks/wol.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/log.h"

namespace shoal::control::tasks {

wol_packet magic_packet(const ipxe::mac_address& mac) noexcept {
    wol_packet packet{};
    std::fill_n(packet.begin(), 6, std::uint8_t{0xff});
    for (std::size_t i = 0; i < 16; ++i) {
        std::copy(mac.bytes.begin(), mac.bytes.end(), packet.begin() + 6 + i * 6);
    }
    return packet;
}

result<in_addr> parse_broadcast(std::string_view text) {
    std::string copy(text);
    in_addr address{};
    if (copy.empty() || inet_pton(AF_INET, copy.c_str(), &address) != 1) {
        return error::format(errc::invalid_argument, 0,
                             "\"{}\" is not an IPv4 broadcast address (such as 10.77.255.255)",
                             text.substr(0, 64));
    }
    return address;
}

result<in_addr> subnet_broadcast(std::string_view address, unsigned prefix_length) {
    auto base = parse_broadcast(address);
    if (!base) {
        return base.err();
    }
    if (prefix_length > 32) {
        return error::format(errc::invalid_argument, 0, "prefix length {} is past 32",
                             prefix_length);
    }
    // A /32 has no host bits (and shifting a 32-bit value by 32 is undefined).
    std::uint32_t host_bits = prefix_length >= 32 ? 0U : (0xffffffffU >> prefix_length);
    in_addr out{};
    out.s_addr = htonl(ntohl(base->s_addr) | host_bits);
    return out;
}

result<wol_report> wake(const ipxe::mac_address& mac, std::span<const in_addr> broadcasts,
                        std::uint16_t port, unsigned repeats) {
    if (broadcasts.empty()) {
        return error::format(errc::invalid_argument, 0,
                             "no broadcast address to wake {} on: set wol.broadcasts in the "
                             "config or let the host register once",
                             mac.to_string());
    }
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return sys_error(-errno, "Wake-on-LAN socket");
    }
    int on = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) != 0) {
        int e = errno;
        ::close(fd);
        return sys_error(-e, "Wake-on-LAN socket: SO_BROADCAST");
    }
    std::vector<std::uint32_t> seen;
    seen.reserve(broadcasts.size());
    for (const auto& b : broadcasts) {
        if (std::find(seen.begin(), seen.end(), b.s_addr) == seen.end()) {
            seen.push_back(b.s_addr);
        }
    }
    auto packet = magic_packet(mac);
    std::vector<bool> reached(seen.size(), false);
    for (unsigned round = 0; round < std::max(repeats, 1U); ++round) {
        if (round > 0) {
            time::sleep_for_ns(100 * time::ns_per_ms);
        }
        for (std::size_t i = 0; i < seen.size(); ++i) {
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(port);
            to.sin_addr.s_addr = seen[i];
            ssize_t n = ::sendto(fd, packet.data(), packet.size(), 0,
                                 reinterpret_cast<const sockaddr*>(&to), sizeof to);
            if (n == static_cast<ssize_t>(packet.size())) {
                reached[i] = true;
            } else if (round == 0) {
                char text[INET_ADDRSTRLEN] = "?";
                inet_ntop(AF_INET, &to.sin_addr, text, sizeof text);
                log::warn(
                    "Wake-on-LAN for {} to {}:{} failed: {} (is there a route to that "
                    "subnet?)",
                    mac.to_string(), text, port, std::strerror(errno));
            }
        }
    }
    ::close(fd);
    wol_report report;
    for (bool r : reached) {
        (r ? report.addresses_sent : report.addresses_failed) += 1;
    }
    return report;
}

}  // namespace shoal::control::tasks
