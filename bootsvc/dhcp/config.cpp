#include "dhcp/config.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace shoal::dhcp {

result<ipv4> parse_ipv4(std::string_view text) noexcept {
    ipv4 value = 0;
    std::string_view rest = text;
    for (int i = 0; i < 4; i++) {
        unsigned octet = 256;
        auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), octet);
        std::size_t used = static_cast<std::size_t>(end - rest.data());
        if (ec != std::errc() || octet > 255 || used == 0 || used > 3) {
            return error::format(
                errc::invalid_argument, 0,
                "'{}' is not an IPv4 address (want four numbers 0-255, e.g. 10.77.0.1)",
                text.substr(0, 40));
        }
        value = (value << 8) | octet;
        rest.remove_prefix(used);
        if (i < 3) {
            if (rest.empty() || rest.front() != '.') {
                return error::format(errc::invalid_argument, 0,
                                     "'{}' is not an IPv4 address (want a.b.c.d)",
                                     text.substr(0, 40));
            }
            rest.remove_prefix(1);
        }
    }
    if (!rest.empty()) {
        return error::format(errc::invalid_argument, 0,
                             "'{}' is not an IPv4 address (trailing characters)",
                             text.substr(0, 40));
    }
    return value;
}

result<mac_address> parse_mac(std::string_view text) noexcept {
    mac_address mac{};
    auto bad = [&] {
        return error::format(
            errc::invalid_argument, 0,
            "'{}' is not a MAC address (want six hex pairs, e.g. 52:54:00:12:34:56)",
            text.substr(0, 40));
    };
    if (text.size() != 17) {
        return bad();
    }
    for (std::size_t i = 0; i < 6; i++) {
        std::string_view pair = text.substr(i * 3, 2);
        unsigned byte = 0;
        auto [end, ec] = std::from_chars(pair.data(), pair.data() + 2, byte, 16);
        if (ec != std::errc() || end != pair.data() + 2) {
            return bad();
        }
        if (i < 5 && text[i * 3 + 2] != ':' && text[i * 3 + 2] != '-') {
            return bad();
        }
        mac[i] = static_cast<std::uint8_t>(byte);
    }
    return mac;
}

std::string format_ipv4(ipv4 address) {
    return fmt::format("{}.{}.{}.{}", address >> 24, (address >> 16) & 0xff, (address >> 8) & 0xff,
                       address & 0xff);
}

std::string format_mac(const mac_address& mac) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                       mac[4], mac[5]);
}

std::vector<std::string> validate(const config& cfg) {
    std::vector<std::string> problems;
    if (cfg.interfaces.empty()) {
        problems.push_back("dhcp: no interface to listen on: name the lab interface(s), e.g. eth1");
    }
    for (const auto& name : cfg.interfaces) {
        if (name.empty() || name.size() >= 16) {
            problems.push_back(
                fmt::format("dhcp: interface name '{}' is not valid (1-15 characters)", name));
        }
    }
    if (cfg.mode == mode::full) {
        if (cfg.pools.empty()) {
            problems.push_back(
                "dhcp: full mode needs an address pool (first and last address), "
                "or use proxy mode beside the site's DHCP server");
        }
        if (cfg.lease_time_s < 60) {
            problems.push_back(fmt::format("dhcp: lease time {} s is too short: use 60 s or more",
                                           cfg.lease_time_s));
        }
        for (std::size_t i = 0; i < cfg.pools.size(); i++) {
            const pool& p = cfg.pools[i];
            if (p.first == 0 || p.last < p.first) {
                problems.push_back(fmt::format("dhcp: pool {}: range {} - {} is empty or reversed",
                                               i + 1, format_ipv4(p.first), format_ipv4(p.last)));
                continue;
            }
            if (p.last - p.first >= (1u << 16)) {
                problems.push_back(
                    fmt::format("dhcp: pool {}: {} - {} holds more than 65536 addresses", i + 1,
                                format_ipv4(p.first), format_ipv4(p.last)));
            }
            if (p.subnet_mask != 0 && ((p.first & p.subnet_mask) != (p.last & p.subnet_mask))) {
                problems.push_back(fmt::format(
                    "dhcp: pool {}: {} and {} are not in one subnet of mask {}", i + 1,
                    format_ipv4(p.first), format_ipv4(p.last), format_ipv4(p.subnet_mask)));
            }
            for (std::size_t j = 0; j < i; j++) {
                if (!(cfg.pools[j].last < p.first || p.last < cfg.pools[j].first)) {
                    problems.push_back(fmt::format("dhcp: pools {} and {} overlap", j + 1, i + 1));
                }
            }
        }
        for (std::size_t i = 0; i < cfg.reservations.size(); i++) {
            const reservation& r = cfg.reservations[i];
            if (r.address == 0) {
                problems.push_back(
                    fmt::format("dhcp: reservation for {} has no address", format_mac(r.mac)));
            }
            for (std::size_t j = 0; j < i; j++) {
                if (cfg.reservations[j].mac == r.mac) {
                    problems.push_back(
                        fmt::format("dhcp: {} is reserved twice", format_mac(r.mac)));
                }
                if (cfg.reservations[j].address == r.address) {
                    problems.push_back(fmt::format(
                        "dhcp: {} is reserved for both {} and {}", format_ipv4(r.address),
                        format_mac(cfg.reservations[j].mac), format_mac(r.mac)));
                }
            }
        }
    }
    for (const auto* url : {&cfg.ipxe_script_url, &cfg.http_boot_url}) {
        if (url->empty()) {
            problems.push_back("dhcp: the iPXE script URL and the HTTP boot URL must be set");
        }
    }
    if (cfg.boot_files.bios.empty() || cfg.boot_files.uefi_x64.empty()) {
        problems.push_back("dhcp: boot file names for BIOS and UEFI x64 must be set");
    }
    if (cfg.server_port == 0 || cfg.client_port == 0 || cfg.pxe_port == 0) {
        problems.push_back("dhcp: ports must not be 0");
    }
    return problems;
}

}  // namespace shoal::dhcp
