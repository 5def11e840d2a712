// Wake-on-LAN: the magic packet (6 x 0xff, then the MAC 16 times) sent as a UDP broadcast
// to port 9, to every configured broadcast address and to the host's last known subnet
// broadcast, so a PC that is off (its NIC listening in standby) wakes for its task.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "ipxe/mac.h"

namespace shoal::control::tasks {

inline constexpr std::size_t wol_packet_size = 102;   // 6 + 16 * 6
inline constexpr std::uint16_t wol_port_default = 9;  // "discard", as etherwake/wakeonlan use
// Each packet is sent this many times, 100 ms apart: a NIC in standby may miss one frame,
// and it costs 306 bytes.
inline constexpr unsigned wol_repeats = 3;

using wol_packet = std::array<std::uint8_t, wol_packet_size>;

// The magic packet for one MAC.
wol_packet magic_packet(const ipxe::mac_address& mac) noexcept;

// Parses a dotted IPv4 broadcast address ("10.77.255.255") for the config; refuses
// anything else with a message naming the text.
result<in_addr> parse_broadcast(std::string_view text);

struct wol_report {
    unsigned addresses_sent = 0;    // destinations at least one packet reached the kernel for
    unsigned addresses_failed = 0;  // destinations every send to failed (logged)
};

// Sends the magic packet for `mac` to port `port` of every address in `broadcasts`
// (duplicates sent once), each wol_repeats times, from one SO_BROADCAST socket. Fails only
// when no socket can be made or no address is given; a destination the kernel refuses
// (no route) is logged and counted, the others are still tried.
result<wol_report> wake(const ipxe::mac_address& mac, std::span<const in_addr> broadcasts,
                        std::uint16_t port = wol_port_default, unsigned repeats = wol_repeats);

// The directed broadcast of a host's subnet from its last known address and prefix length
// ("10.77.1.5", 16 -> 10.77.255.255); an error for a bad address or prefix.
result<in_addr> subnet_broadcast(std::string_view address, unsigned prefix_length);

}  // namespace shoal::control::tasks
