// What a DHCP server is told to do: the mode, the interfaces it listens on, the address pool
// and reservations (full mode), and the boot files and URLs handed to PXE, iPXE and UEFI HTTP
// boot clients. Plain data: shoal boot fills it from its config file; see server.h for the API.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace shoal::dhcp {

// An IPv4 address in host byte order (10.77.0.1 is 0x0a4d0001); 0 means "not set".
using ipv4 = std::uint32_t;
using mac_address = std::array<std::uint8_t, 6>;

// "10.77.0.1" -> 0x0a4d0001. Refuses anything but four decimal octets.
result<ipv4> parse_ipv4(std::string_view text) noexcept;
// "52:54:00:12:34:56" or "52-54-00-12-34-56" (any case) -> bytes.
result<mac_address> parse_mac(std::string_view text) noexcept;
std::string format_ipv4(ipv4 address);
std::string format_mac(const mac_address& mac);  // lowercase, colons

enum class mode : std::uint8_t {
    proxy,  // the default: PXE options only, no addresses; safe beside a site DHCP server
    full,   // an isolated lab: shoal hands out addresses from `pools`
};

// A range of addresses handed out in full mode. It must lie inside the subnet of exactly one
// of the listened interfaces; requests from that interface are served from it.
struct pool {
    ipv4 first = 0;        // inclusive
    ipv4 last = 0;         // inclusive
    ipv4 subnet_mask = 0;  // 0: the interface's own prefix
    ipv4 router = 0;       // 0: no router option
    std::vector<ipv4> dns_servers;
    std::string domain_name;  // empty: no option 15
};

// Always the same address for this MAC (full mode). The address may be inside or outside the
// pool's range but must be inside the interface's subnet.
struct reservation {
    mac_address mac{};
    ipv4 address = 0;
    std::string hostname;  // empty: no option 12
};

// Boot files by client architecture (option 93, RFC 4578), names relative to the TFTP root.
struct boot_files {
    std::string bios = "undionly.kpxe";   // arch 0: a BIOS PXE ROM chainloads iPXE
    std::string uefi_x64 = "ipxe.efi";    // arch 7 and 9; "snponly.efi" keeps the NIC's driver
    std::string uefi_ia32 = "ipxe.efi";   // arch 6 (rare; Debian ships no i386 EFI iPXE)
    std::string uefi_arm64 = "ipxe.efi";  // arch 11
};

struct config {
    enum mode mode = mode::proxy;

    // Interface names (e.g. "eth1"). The server listens on these only, each socket bound to
    // its device. Must not be empty.
    std::vector<std::string> interfaces;

    // The address the server identifies itself with (option 54) and puts in URLs. 0: each
    // interface's own primary IPv4 address, which is what a multi-homed server wants.
    ipv4 server_address = 0;
    // siaddr / option 66 for TFTP. 0: the server address on the interface the request came in.
    ipv4 tftp_server = 0;

    // Full mode only.
    std::vector<pool> pools;
    std::vector<reservation> reservations;
    std::uint32_t lease_time_s = 3600;
    // How long an offered address is held for the client it was offered to. Short, so that a
    // flood of DISCOVERs from made-up MACs cannot hold the pool: when no address is free,
    // the oldest unanswered offer is taken back (leases are never taken back).
    std::uint32_t offer_hold_s = 30;
    // Leases survive restarts here (a journal of lines, compacted atomically). Empty: leases
    // live in memory only (tests).
    std::string leases_path;

    struct boot_files boot_files;

    // The URL handed to a client that is already iPXE (user class "iPXE"), so it fetches its
    // script over HTTP instead of being sent undionly.kpxe again (which would loop forever).
    // {server} becomes the server address, {mac} the client's MAC (aa:bb:cc:dd:ee:ff); iPXE's
    // own ${...} settings pass through untouched for iPXE to expand.
    std::string ipxe_script_url = "http://{server}:8080/boot?mac={mac}";
    // What a UEFI HTTP boot client (arch 15/16/19, vendor class "HTTPClient") downloads first:
    // an iPXE EFI binary over HTTP. {server} and {file} (the UEFI boot file above) are filled.
    std::string http_boot_url = "http://{server}:8080/{file}";

    // Ports: the standard ones; tests and benchmarks may move them.
    std::uint16_t server_port = 67;  // DHCP server (and proxyDHCP offers)
    std::uint16_t client_port = 68;  // where replies to clients without an address go
    std::uint16_t pxe_port = 4011;   // proxyDHCP boot server requests (proxy mode only)
};

// Checks the config on its own (no system calls): a pool outside reason, reservations that
// collide, an empty interface list. Returns one line per problem, each saying what to change.
std::vector<std::string> validate(const config& cfg);

}  // namespace shoal::dhcp
