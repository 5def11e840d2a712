// DHCP wire format (RFC 2131/2132): decoding a request into a fixed-size view and encoding a
// reply into a caller's buffer. Nothing here allocates; both sides are bounded by
// packet_size_max. Options that appear more than once are joined (RFC 3396), the sname and
// file fields are read as options when option 52 says they are overloaded, and every length
// is checked against what is really there.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "common/result.h"
#include "dhcp/config.h"

namespace shoal::dhcp {

// The fixed BOOTP header up to and including `file`, then the 4-byte magic cookie.
constexpr std::size_t header_size = 236;
constexpr std::size_t options_offset = header_size + 4;
constexpr std::uint32_t magic_cookie = 0x63825363;
// Larger datagrams are dropped as oversized: no DHCP client sends more than an Ethernet frame
// holds, and the bound keeps a decoded message a fixed size.
constexpr std::size_t packet_size_max = 2048;
// BOOTP's minimum message; older PXE ROMs drop shorter replies, so replies are padded to it.
constexpr std::size_t reply_size_min = 300;
// What every client must accept (RFC 2131 section 2: 576-byte IP datagrams).
constexpr std::size_t client_size_min = 576 - 28;

constexpr std::uint8_t op_request = 1;
constexpr std::uint8_t op_reply = 2;
constexpr std::uint16_t flag_broadcast = 0x8000;

enum class message_type : std::uint8_t {
    none = 0,  // BOOTP: no option 53
    discover = 1,
    offer = 2,
    request = 3,
    decline = 4,
    ack = 5,
    nak = 6,
    release = 7,
    inform = 8,
};
std::string_view message_type_name(message_type type) noexcept;

// Option codes used here (RFC 2132 and successors; iPXE's from src/include/ipxe/dhcp.h).
namespace opt {
constexpr std::uint8_t pad = 0;
constexpr std::uint8_t subnet_mask = 1;
constexpr std::uint8_t router = 3;
constexpr std::uint8_t dns_servers = 6;
constexpr std::uint8_t hostname = 12;
constexpr std::uint8_t domain_name = 15;
constexpr std::uint8_t broadcast_address = 28;
constexpr std::uint8_t vendor_options = 43;  // PXE: encapsulated sub-options below
constexpr std::uint8_t requested_address = 50;
constexpr std::uint8_t lease_time = 51;
constexpr std::uint8_t overload = 52;
constexpr std::uint8_t message_type = 53;
constexpr std::uint8_t server_id = 54;
constexpr std::uint8_t parameter_list = 55;
constexpr std::uint8_t message = 56;
constexpr std::uint8_t max_message_size = 57;
constexpr std::uint8_t renewal_time = 58;
constexpr std::uint8_t rebinding_time = 59;
constexpr std::uint8_t vendor_class = 60;  // "PXEClient:Arch:00000:UNDI:002001"
constexpr std::uint8_t client_id = 61;
constexpr std::uint8_t tftp_server = 66;
constexpr std::uint8_t bootfile = 67;
constexpr std::uint8_t user_class = 77;   // iPXE sends "iPXE"
constexpr std::uint8_t client_arch = 93;  // RFC 4578
constexpr std::uint8_t client_ndi = 94;
constexpr std::uint8_t client_uuid = 97;
constexpr std::uint8_t ipxe = 175;  // iPXE's encapsulated options
constexpr std::uint8_t end = 255;
}  // namespace opt

// Sub-options of option 43 for PXE (PXE 2.1 spec) and of option 175 for iPXE.
namespace pxe_opt {
constexpr std::uint8_t discovery_control = 6;
constexpr std::uint8_t boot_servers = 8;
constexpr std::uint8_t boot_menu = 9;
constexpr std::uint8_t menu_prompt = 10;
constexpr std::uint8_t boot_item = 71;
// discovery_control bits: 8 = "use the boot file in this offer, do not discover servers".
constexpr std::uint8_t skip_discovery = 8;
}  // namespace pxe_opt
namespace ipxe_opt {
// "Skip PXE DHCP extensions": iPXE stops waiting ~3 s for ProxyDHCP offers.
constexpr std::uint8_t no_pxedhcp = 176;
}  // namespace ipxe_opt

// Client system architectures (option 93, RFC 4578 and IANA's registry).
namespace arch {
constexpr std::uint16_t bios = 0;
constexpr std::uint16_t efi_ia32 = 6;
constexpr std::uint16_t efi_bc = 7;  // what most x64 firmware sends
constexpr std::uint16_t efi_x64 = 9;
constexpr std::uint16_t efi_arm64 = 11;
constexpr std::uint16_t http_ia32 = 15;
constexpr std::uint16_t http_x64 = 16;
constexpr std::uint16_t http_arm64 = 19;
}  // namespace arch

// A decoded message. Fixed size (about 5 KiB): keep one and reuse it.
struct message {
    std::uint8_t op = 0;
    std::uint8_t htype = 0;
    std::uint8_t hlen = 0;
    std::uint8_t hops = 0;
    std::uint32_t xid = 0;
    std::uint16_t secs = 0;
    std::uint16_t flags = 0;
    ipv4 ciaddr = 0;
    ipv4 yiaddr = 0;
    ipv4 siaddr = 0;
    ipv4 giaddr = 0;
    std::array<std::uint8_t, 16> chaddr{};
    // The fixed fields as text, empty when they carry options (overload) or are all zero.
    std::string_view sname;
    std::string_view file;

    message_type type = message_type::none;

    // The value of an option (joined if it appeared more than once), or nullopt.
    bool has(std::uint8_t code) const noexcept { return _size[code] != absent; }
    std::span<const std::uint8_t> option(std::uint8_t code) const noexcept;
    std::string_view option_text(std::uint8_t code) const noexcept;

    // The client's MAC when htype is Ethernet and hlen 6.
    bool has_mac() const noexcept { return htype == 1 && hlen == 6; }
    mac_address mac() const noexcept;

private:
    friend status decode(std::span<const std::uint8_t> bytes, message& out) noexcept;
    static constexpr std::uint16_t absent = 0xffff;
    std::array<std::uint16_t, 256> _offset{};
    std::array<std::uint16_t, 256> _size{};
    std::array<std::uint8_t, packet_size_max> _data{};
    std::array<char, 64> _sname{};
    std::array<char, 128> _file{};
};

// Decodes bytes into out (reset first). Fails with errc::truncated or errc::malformed and a
// context naming the field or option and its offset. Checks the header, the magic cookie,
// every option's length, the overload option, and the length of the options used here
// (53, 50, 54, 51, 57, 93 and 52 must have their fixed sizes).
status decode(std::span<const std::uint8_t> bytes, message& out) noexcept;

// Parsed conveniences over a decoded message.
// The first architecture in option 93, or nullopt.
std::optional<std::uint16_t> client_arch(const message& m) noexcept;
// Option 57 or client_size_min, never below client_size_min nor above packet_size_max.
std::size_t reply_size_max(const message& m) noexcept;
// A 4-byte address option (50, 54), or 0.
ipv4 option_ipv4(const message& m, std::uint8_t code) noexcept;
// True when option 77 is "iPXE" (as iPXE sends it) or holds "iPXE" as an RFC 3004 entry.
bool user_class_is(const message& m, std::string_view name) noexcept;
// True when option 60 starts with prefix ("PXEClient", "HTTPClient").
bool vendor_class_starts_with(const message& m, std::string_view prefix) noexcept;
// A sub-option of an encapsulated option (43, 175): its bytes, or an empty span if absent or
// if the encapsulated list is malformed.
std::span<const std::uint8_t> sub_option(std::span<const std::uint8_t> encapsulated,
                                         std::uint8_t code) noexcept;

// Writes a reply into a caller's buffer: the header first, then options, then finish().
// An option that does not fit is refused (add() returns false) and the message stays valid.
class builder {
public:
    // size_max: the most bytes the peer takes (reply_size_max()); clamped to buffer.size().
    builder(std::span<std::uint8_t> buffer, std::size_t size_max) noexcept;

    // Header fields from the request (xid, flags, giaddr, chaddr, htype, hlen), op = reply.
    void reply_header(const message& request, ipv4 yiaddr, ipv4 siaddr) noexcept;
    // Copies text into the fixed fields; false if it does not fit (with its terminating NUL).
    bool set_sname(std::string_view text) noexcept;
    bool set_file(std::string_view text) noexcept;
    void set_ciaddr(ipv4 address) noexcept;

    // Values longer than 255 bytes are split into several instances (RFC 3396).
    bool add(std::uint8_t code, std::span<const std::uint8_t> value) noexcept;
    bool add_text(std::uint8_t code, std::string_view text) noexcept;
    bool add_u8(std::uint8_t code, std::uint8_t value) noexcept;
    bool add_u16(std::uint8_t code, std::uint16_t value) noexcept;
    bool add_u32(std::uint8_t code, std::uint32_t value) noexcept;
    bool add_ipv4(std::uint8_t code, ipv4 address) noexcept { return add_u32(code, address); }

    // Ends the options and pads to reply_size_min; returns the message's size in bytes.
    std::size_t finish() noexcept;

private:
    std::span<std::uint8_t> _buffer;
    std::size_t _size_max;
    std::size_t _used = options_offset;
};

}  // namespace shoal::dhcp
