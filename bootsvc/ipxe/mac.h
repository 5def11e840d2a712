// MAC addresses as people and firmware write them, normalized to one form: the key of a
// host everywhere in shoal (lowercase hex, colons: 00:12:3f:c4:57:0c).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace shoal::ipxe {

struct mac_address {
    std::array<std::uint8_t, 6> bytes{};

    // "00:12:3f:c4:57:0c"
    std::string to_string() const;
    bool operator==(const mac_address&) const = default;
};

// Accepts six hex pairs separated all by ':' or all by '-' ("00-12-3F-C4-57-0C", as
// Windows writes them), or twelve hex digits with no separator; either case. Refuses
// anything else, and the all-zero, broadcast and multicast addresses no NIC boots with.
result<mac_address> parse_mac(std::string_view text) noexcept;

}  // namespace shoal::ipxe
