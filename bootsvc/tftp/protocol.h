// TFTP on the wire: RFC 1350 packets and the RFC 2347 option extension with blksize
// (RFC 2348), tsize and timeout (RFC 2349) and windowsize (RFC 7440). Parsing and encoding
// only, in one place; no state, no allocation. Parsed strings point into the packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "common/result.h"

namespace shoal::tftp {

enum class opcode : std::uint16_t { rrq = 1, wrq = 2, data = 3, ack = 4, error = 5, oack = 6 };

enum class error_code : std::uint16_t {
    not_defined = 0,
    file_not_found = 1,
    access_violation = 2,
    disk_full = 3,
    illegal_operation = 4,
    unknown_tid = 5,
    file_exists = 6,
    no_such_user = 7,
    option_refused = 8,  // RFC 2347: the client ends the transfer after an OACK
};

enum class transfer_mode : std::uint8_t { netascii, octet };

inline constexpr std::uint16_t blksize_default = 512;
inline constexpr std::uint16_t blksize_min = 8;
inline constexpr std::uint16_t blksize_max = 65464;  // RFC 2348: fits one IPv4 UDP datagram
inline constexpr std::uint8_t timeout_s_min = 1;
inline constexpr std::uint8_t timeout_s_max = 255;
inline constexpr std::size_t header_size = 4;  // opcode + block number
inline constexpr std::size_t packet_size_max = header_size + blksize_max;
// Options read from one request; more are ignored (a request holds five at most in practice).
inline constexpr std::size_t request_options_max = 16;
// Longest option value we read as a number: a 64-bit tsize has 20 digits.
inline constexpr std::size_t option_digits_max = 20;

// A read or write request. Options are present only when their value was valid: RFC 2347
// lets a server ignore an option it cannot honour, so a bad value is dropped, not fatal.
struct request {
    opcode op = opcode::rrq;
    std::string_view filename;  // into the packet; never empty
    transfer_mode mode = transfer_mode::octet;
    std::optional<std::uint16_t> blksize;     // clamped to [blksize_min, blksize_max]
    std::optional<std::uint64_t> tsize;       // 0 in a read request: "tell me the size"
    std::optional<std::uint8_t> timeout_s;    // [1, 255]
    std::optional<std::uint16_t> windowsize;  // [1, 65535]
    std::uint8_t ignored_option_count = 0;    // unknown, duplicate or invalid options

    bool has_options() const noexcept { return blksize || tsize || timeout_s || windowsize; }
};

// Parses a RRQ or WRQ. Errors: truncated (a string without its NUL), malformed (another
// opcode, an empty file name), unsupported (a mode other than netascii or octet).
result<request> parse_request(std::span<const std::byte> packet) noexcept;

// Encodes a request (with the options that are set); returns the size, 0 if `out` is
// too small. For clients and tests.
std::size_t encode_request(std::span<std::byte> out, const request& r) noexcept;

// The options a server accepted, sent back in an OACK.
struct option_reply {
    std::optional<std::uint16_t> blksize;
    std::optional<std::uint64_t> tsize;
    std::optional<std::uint8_t> timeout_s;
    std::optional<std::uint16_t> windowsize;
};

std::size_t encode_oack(std::span<std::byte> out, const option_reply& reply) noexcept;
// Parses an OACK (for clients and tests): malformed on unknown options or bad values.
result<option_reply> parse_oack(std::span<const std::byte> packet) noexcept;

// `message` is cut to fit `out`; returns the size.
std::size_t encode_error(std::span<std::byte> out, error_code code,
                         std::string_view message) noexcept;

struct error_packet {
    error_code code = error_code::not_defined;
    std::string_view message;  // into the packet; may be empty
};
result<error_packet> parse_error(std::span<const std::byte> packet) noexcept;

// The 4-byte header of a DATA or ACK packet.
void encode_header(std::span<std::byte, header_size> out, opcode op, std::uint16_t block) noexcept;

// The opcode of any packet (truncated if shorter than 2 bytes).
result<opcode> packet_opcode(std::span<const std::byte> packet) noexcept;

// The block number of an ACK (or of a DATA packet, for clients).
result<std::uint16_t> parse_block(std::span<const std::byte> packet, opcode expected) noexcept;

std::string_view error_code_name(error_code code) noexcept;

}  // namespace shoal::tftp
