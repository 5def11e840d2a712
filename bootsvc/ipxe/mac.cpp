#include "ipxe/mac.h"

#include <fmt/format.h>

namespace shoal::ipxe {

namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string mac_address::to_string() const {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                       bytes[3], bytes[4], bytes[5]);
}

result<mac_address> parse_mac(std::string_view text) noexcept {
    std::size_t stride;
    char separator = 0;
    if (text.size() == 17) {
        separator = text[2];
        if (separator != ':' && separator != '-') {
            return error(errc::malformed, "a MAC address is six hex pairs split by ':' or '-'");
        }
        stride = 3;
    } else if (text.size() == 12) {
        stride = 2;
    } else {
        return error::format(errc::malformed, 0,
                             "a MAC address has 12 hex digits (got {} characters)", text.size());
    }
    mac_address mac;
    for (std::size_t i = 0; i < 6; ++i) {
        std::size_t at = i * stride;
        int hi = hex_value(text[at]);
        int lo = hex_value(text[at + 1]);
        if (hi < 0 || lo < 0) {
            return error(errc::malformed, "a MAC address holds hex digits only");
        }
        if (separator != 0 && i < 5 && text[at + 2] != separator) {
            return error(errc::malformed, "a MAC address uses one separator throughout");
        }
        mac.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    if (mac == mac_address{}) {
        return error(errc::invalid_argument, "00:00:00:00:00:00 is no NIC's address");
    }
    if ((mac.bytes[0] & 1) != 0) {
        return error(errc::invalid_argument, "a multicast or broadcast MAC is no NIC's address");
    }
    return mac;
}

}  // namespace shoal::ipxe
