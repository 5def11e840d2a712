#include "tftp/protocol.h"

#include <cstring>

#include <fmt/format.h>

namespace shoal::tftp {

namespace {

std::uint16_t load_be16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                      std::to_integer<unsigned>(p[1]));
}

void store_be16(std::byte* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v & 0xff);
}

// Reads NUL-terminated strings one after another from a packet.
class string_reader {
public:
    explicit string_reader(std::span<const std::byte> bytes) noexcept : _bytes(bytes) {}

    bool at_end() const noexcept { return _pos >= _bytes.size(); }

    // The next string, or nullopt if the bytes end before its NUL.
    std::optional<std::string_view> next() noexcept {
        const auto* begin = reinterpret_cast<const char*>(_bytes.data()) + _pos;
        std::size_t left = _bytes.size() - _pos;
        const void* nul = std::memchr(begin, '\0', left);
        if (nul == nullptr) {
            return std::nullopt;
        }
        std::size_t size = static_cast<std::size_t>(static_cast<const char*>(nul) - begin);
        _pos += size + 1;
        return std::string_view(begin, size);
    }

private:
    std::span<const std::byte> _bytes;
    std::size_t _pos = 0;
};

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = static_cast<char>(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = static_cast<char>(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

// Plain decimal digits only: no sign, no spaces, at most option_digits_max of them.
std::optional<std::uint64_t> parse_number(std::string_view text) noexcept {
    if (text.empty() || text.size() > option_digits_max) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

// Appends "name\0value\0"; false if it does not fit.
class packet_writer {
public:
    explicit packet_writer(std::span<std::byte> out) noexcept : _out(out) {}

    bool u16(std::uint16_t v) noexcept {
        if (_out.size() - _pos < 2) {
            return false;
        }
        store_be16(_out.data() + _pos, v);
        _pos += 2;
        return true;
    }
    bool str(std::string_view s) noexcept {
        if (_out.size() - _pos < s.size() + 1) {
            return false;
        }
        std::memcpy(_out.data() + _pos, s.data(), s.size());
        _pos += s.size();
        _out[_pos++] = std::byte{0};
        return true;
    }
    bool option(std::string_view name, std::uint64_t value) noexcept {
        char digits[option_digits_max + 1];
        auto end = fmt::format_to_n(digits, sizeof digits, "{}", value);
        return str(name) && str(std::string_view(digits, end.size));
    }
    std::size_t size() const noexcept { return _pos; }

private:
    std::span<std::byte> _out;
    std::size_t _pos = 0;
};

}  // namespace

result<opcode> packet_opcode(std::span<const std::byte> packet) noexcept {
    if (packet.size() < 2) {
        return error::format(errc::truncated, 0, "packet of {} bytes has no opcode", packet.size());
    }
    std::uint16_t op = load_be16(packet.data());
    if (op < 1 || op > 6) {
        return error::format(errc::malformed, 0, "unknown opcode {}", op);
    }
    return static_cast<opcode>(op);
}

result<request> parse_request(std::span<const std::byte> packet) noexcept {
    auto op = packet_opcode(packet);
    if (!op) {
        return op.err();
    }
    if (*op != opcode::rrq && *op != opcode::wrq) {
        return error::format(errc::malformed, 0, "opcode {} is not a request",
                             static_cast<unsigned>(*op));
    }
    request r;
    r.op = *op;
    string_reader reader(packet.subspan(2));
    auto filename = reader.next();
    if (!filename) {
        return error(errc::truncated, "request ends inside the file name");
    }
    if (filename->empty()) {
        return error(errc::malformed, "request has an empty file name");
    }
    r.filename = *filename;
    auto mode = reader.next();
    if (!mode) {
        return error(errc::truncated, "request ends inside the mode");
    }
    if (iequals(*mode, "octet")) {
        r.mode = transfer_mode::octet;
    } else if (iequals(*mode, "netascii")) {
        r.mode = transfer_mode::netascii;
    } else {
        return error(errc::unsupported, "transfer mode is neither octet nor netascii");
    }

    for (std::size_t count = 0; !reader.at_end() && count < request_options_max; ++count) {
        auto name = reader.next();
        // Some PXE ROMs pad requests with NUL bytes: an empty or unterminated name ends
        // the options rather than failing the request.
        if (!name || name->empty()) {
            break;
        }
        auto value_text = reader.next();
        if (!value_text) {
            ++r.ignored_option_count;
            break;
        }
        auto value = parse_number(*value_text);
        bool used = false;
        if (iequals(*name, "blksize")) {
            if (value && !r.blksize && *value >= blksize_min) {
                r.blksize = static_cast<std::uint16_t>(*value < blksize_max ? *value : blksize_max);
                used = true;
            }
        } else if (iequals(*name, "tsize")) {
            if (value && !r.tsize) {
                r.tsize = *value;
                used = true;
            }
        } else if (iequals(*name, "timeout")) {
            if (value && !r.timeout_s && *value >= timeout_s_min && *value <= timeout_s_max) {
                r.timeout_s = static_cast<std::uint8_t>(*value);
                used = true;
            }
        } else if (iequals(*name, "windowsize")) {
            if (value && !r.windowsize && *value >= 1 && *value <= 65535) {
                r.windowsize = static_cast<std::uint16_t>(*value);
                used = true;
            }
        }
        if (!used) {
            ++r.ignored_option_count;
        }
    }
    return r;
}

std::size_t encode_request(std::span<std::byte> out, const request& r) noexcept {
    packet_writer w(out);
    bool fits = w.u16(static_cast<std::uint16_t>(r.op)) && w.str(r.filename) &&
                w.str(r.mode == transfer_mode::octet ? "octet" : "netascii");
    if (fits && r.blksize) fits = w.option("blksize", *r.blksize);
    if (fits && r.tsize) fits = w.option("tsize", *r.tsize);
    if (fits && r.timeout_s) fits = w.option("timeout", *r.timeout_s);
    if (fits && r.windowsize) fits = w.option("windowsize", *r.windowsize);
    return fits ? w.size() : 0;
}

std::size_t encode_oack(std::span<std::byte> out, const option_reply& reply) noexcept {
    packet_writer w(out);
    bool fits = w.u16(static_cast<std::uint16_t>(opcode::oack));
    if (fits && reply.blksize) fits = w.option("blksize", *reply.blksize);
    if (fits && reply.tsize) fits = w.option("tsize", *reply.tsize);
    if (fits && reply.timeout_s) fits = w.option("timeout", *reply.timeout_s);
    if (fits && reply.windowsize) fits = w.option("windowsize", *reply.windowsize);
    return fits ? w.size() : 0;
}

result<option_reply> parse_oack(std::span<const std::byte> packet) noexcept {
    auto op = packet_opcode(packet);
    if (!op) {
        return op.err();
    }
    if (*op != opcode::oack) {
        return error(errc::malformed, "not an OACK");
    }
    option_reply reply;
    string_reader reader(packet.subspan(2));
    while (!reader.at_end()) {
        auto name = reader.next();
        auto value_text = name ? reader.next() : std::nullopt;
        if (!value_text) {
            return error(errc::truncated, "OACK ends inside an option");
        }
        auto value = parse_number(*value_text);
        if (!value) {
            return error(errc::malformed, "OACK option value is not a number");
        }
        if (iequals(*name, "blksize") && *value >= blksize_min && *value <= blksize_max) {
            reply.blksize = static_cast<std::uint16_t>(*value);
        } else if (iequals(*name, "tsize")) {
            reply.tsize = *value;
        } else if (iequals(*name, "timeout") && *value >= timeout_s_min &&
                   *value <= timeout_s_max) {
            reply.timeout_s = static_cast<std::uint8_t>(*value);
        } else if (iequals(*name, "windowsize") && *value >= 1 && *value <= 65535) {
            reply.windowsize = static_cast<std::uint16_t>(*value);
        } else {
            return error(errc::malformed, "OACK holds an option that was not asked for");
        }
    }
    return reply;
}

std::size_t encode_error(std::span<std::byte> out, error_code code,
                         std::string_view message) noexcept {
    if (out.size() < 5) {
        return 0;
    }
    std::size_t room = out.size() - 5;
    if (message.size() > room) {
        message = message.substr(0, room);
    }
    // A NUL inside the message would end it early on the other side; cut there.
    if (auto nul = message.find('\0'); nul != std::string_view::npos) {
        message = message.substr(0, nul);
    }
    packet_writer w(out);
    bool fits = w.u16(static_cast<std::uint16_t>(opcode::error)) &&
                w.u16(static_cast<std::uint16_t>(code)) && w.str(message);
    return fits ? w.size() : 0;
}

result<error_packet> parse_error(std::span<const std::byte> packet) noexcept {
    auto op = packet_opcode(packet);
    if (!op) {
        return op.err();
    }
    if (*op != opcode::error) {
        return error(errc::malformed, "not an ERROR packet");
    }
    if (packet.size() < 4) {
        return error(errc::truncated, "ERROR packet without its code");
    }
    error_packet e;
    e.code = static_cast<error_code>(load_be16(packet.data() + 2));
    // Many clients omit the message's NUL: take what is there.
    const auto* text = reinterpret_cast<const char*>(packet.data() + 4);
    std::size_t size = packet.size() - 4;
    if (const void* nul = std::memchr(text, '\0', size)) {
        size = static_cast<std::size_t>(static_cast<const char*>(nul) - text);
    }
    e.message = std::string_view(text, size);
    return e;
}

void encode_header(std::span<std::byte, header_size> out, opcode op, std::uint16_t block) noexcept {
    store_be16(out.data(), static_cast<std::uint16_t>(op));
    store_be16(out.data() + 2, block);
}

result<std::uint16_t> parse_block(std::span<const std::byte> packet, opcode expected) noexcept {
    auto op = packet_opcode(packet);
    if (!op) {
        return op.err();
    }
    if (*op != expected) {
        return error::format(errc::malformed, 0, "opcode {} where {} was expected",
                             static_cast<unsigned>(*op), static_cast<unsigned>(expected));
    }
    if (packet.size() < header_size) {
        return error(errc::truncated, "packet without its block number");
    }
    return load_be16(packet.data() + 2);
}

std::string_view error_code_name(error_code code) noexcept {
    switch (code) {
    case error_code::not_defined: return "not defined";
    case error_code::file_not_found: return "file not found";
    case error_code::access_violation: return "access violation";
    case error_code::disk_full: return "disk full";
    case error_code::illegal_operation: return "illegal operation";
    case error_code::unknown_tid: return "unknown transfer id";
    case error_code::file_exists: return "file exists";
    case error_code::no_such_user: return "no such user";
    case error_code::option_refused: return "option refused";
    }
    return "unknown error code";
}

}  // namespace shoal::tftp
