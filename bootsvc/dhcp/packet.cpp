#include "dhcp/packet.h"

#include <algorithm>
#include <cstring>

namespace shoal::dhcp {
namespace {

std::uint16_t load16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t load32(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           p[3];
}
void store16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
void store32(std::uint8_t* p, std::uint32_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

// Where the fixed fields sit in the header.
constexpr std::size_t sname_offset = 44;
constexpr std::size_t sname_size = 64;
constexpr std::size_t file_offset = 108;
constexpr std::size_t file_size = 128;

struct option_ref {
    std::uint8_t code;
    std::uint8_t size;
    std::uint16_t start;
};
// Every option takes at least two bytes, so a packet holds at most this many.
constexpr std::size_t option_refs_max = packet_size_max / 2;

const char* area_name(std::size_t begin) noexcept {
    return begin == file_offset ? "file field" : begin == sname_offset ? "sname field" : "options";
}

// Walks one option area, appending what it finds to refs. Stops at END.
status walk(std::span<const std::uint8_t> bytes, std::size_t begin, std::size_t end,
            std::array<option_ref, option_refs_max>& refs, std::size_t& count) noexcept {
    std::size_t pos = begin;
    while (pos < end) {
        std::uint8_t code = bytes[pos];
        if (code == opt::pad) {
            pos++;
            continue;
        }
        if (code == opt::end) {
            return ok();
        }
        if (pos + 1 >= end) {
            return error::format(errc::truncated, 0,
                                 "option {} at byte {} of the {} has no length byte", code, pos,
                                 area_name(begin));
        }
        std::size_t size = bytes[pos + 1];
        if (pos + 2 + size > end) {
            return error::format(errc::truncated, 0,
                                 "option {} at byte {} of the {} claims {} bytes, only {} are left",
                                 code, pos, area_name(begin), size, end - pos - 2);
        }
        SHOAL_DASSERT(count < refs.size());
        refs[count++] =
            option_ref{code, static_cast<std::uint8_t>(size), static_cast<std::uint16_t>(pos + 2)};
        pos += 2 + size;
    }
    // No END: tolerated, as many clients' padding runs to the end of the datagram.
    return ok();
}

std::string_view fixed_text(const std::uint8_t* field, std::size_t size, char* copy) noexcept {
    std::memcpy(copy, field, size);
    std::size_t length = 0;
    while (length < size && copy[length] != '\0') {
        length++;
    }
    return {copy, length};
}

}  // namespace

std::string_view message_type_name(message_type type) noexcept {
    switch (type) {
    case message_type::none: return "BOOTP";
    case message_type::discover: return "DISCOVER";
    case message_type::offer: return "OFFER";
    case message_type::request: return "REQUEST";
    case message_type::decline: return "DECLINE";
    case message_type::ack: return "ACK";
    case message_type::nak: return "NAK";
    case message_type::release: return "RELEASE";
    case message_type::inform: return "INFORM";
    }
    return "?";
}

std::span<const std::uint8_t> message::option(std::uint8_t code) const noexcept {
    if (_size[code] == absent) {
        return {};
    }
    return {_data.data() + _offset[code], _size[code]};
}

std::string_view message::option_text(std::uint8_t code) const noexcept {
    auto v = option(code);
    return {reinterpret_cast<const char*>(v.data()), v.size()};
}

mac_address message::mac() const noexcept {
    mac_address m{};
    std::copy_n(chaddr.begin(), m.size(), m.begin());
    return m;
}

status decode(std::span<const std::uint8_t> bytes, message& out) noexcept {
    out._size.fill(message::absent);
    out.sname = {};
    out.file = {};
    out.type = message_type::none;
    if (bytes.size() < options_offset) {
        return error::format(errc::truncated, 0,
                             "{} bytes is shorter than a DHCP header and cookie ({})", bytes.size(),
                             options_offset);
    }
    if (bytes.size() > packet_size_max) {
        return error::format(errc::malformed, 0,
                             "{} bytes is larger than a DHCP message may be here ({})",
                             bytes.size(), packet_size_max);
    }
    const std::uint8_t* b = bytes.data();
    out.op = b[0];
    out.htype = b[1];
    out.hlen = b[2];
    out.hops = b[3];
    out.xid = load32(b + 4);
    out.secs = load16(b + 8);
    out.flags = load16(b + 10);
    out.ciaddr = load32(b + 12);
    out.yiaddr = load32(b + 16);
    out.siaddr = load32(b + 20);
    out.giaddr = load32(b + 24);
    std::memcpy(out.chaddr.data(), b + 28, out.chaddr.size());
    if (out.hlen > out.chaddr.size()) {
        return error::format(errc::malformed, 0, "hardware address length {} is over 16", out.hlen);
    }
    if (out.op != op_request && out.op != op_reply) {
        return error::format(errc::malformed, 0, "op {} is neither BOOTREQUEST nor BOOTREPLY",
                             out.op);
    }
    if (load32(b + header_size) != magic_cookie) {
        return error::format(errc::malformed, 0,
                             "no DHCP magic cookie (0x{:08x}): plain BOOTP is not served",
                             load32(b + header_size));
    }

    std::array<option_ref, option_refs_max> refs;
    std::size_t count = 0;
    SHOAL_RETURN_IF_ERROR(walk(bytes, options_offset, bytes.size(), refs, count));
    std::uint8_t overload = 0;
    for (std::size_t i = 0; i < count; i++) {
        if (refs[i].code == opt::overload) {
            if (refs[i].size != 1 || b[refs[i].start] < 1 || b[refs[i].start] > 3) {
                return error::format(errc::malformed, 0,
                                     "option 52 (overload) must be one byte 1-3");
            }
            overload = b[refs[i].start];
        }
    }
    std::size_t main_count = count;
    if (overload & 1) {
        SHOAL_RETURN_IF_ERROR(walk(bytes, file_offset, file_offset + file_size, refs, count));
    } else {
        out.file = fixed_text(b + file_offset, file_size, out._file.data());
    }
    if (overload & 2) {
        SHOAL_RETURN_IF_ERROR(walk(bytes, sname_offset, sname_offset + sname_size, refs, count));
    } else {
        out.sname = fixed_text(b + sname_offset, sname_size, out._sname.data());
    }
    for (std::size_t i = main_count; i < count; i++) {
        if (refs[i].code == opt::overload) {
            return error::format(errc::malformed, 0,
                                 "option 52 (overload) inside an overloaded field");
        }
    }

    // Join repeated options (RFC 3396): sizes first, then each code's bytes in order.
    std::array<std::uint16_t, 256> total{};
    for (std::size_t i = 0; i < count; i++) {
        total[refs[i].code] = static_cast<std::uint16_t>(total[refs[i].code] + refs[i].size);
    }
    std::array<std::uint16_t, 256> seen{};
    std::uint16_t next = 0;
    for (std::size_t i = 0; i < count; i++) {
        std::uint8_t code = refs[i].code;
        if (out._size[code] == message::absent) {
            out._offset[code] = next;
            out._size[code] = total[code];
            next = static_cast<std::uint16_t>(next + total[code]);
        }
        // Bounded: the sum of all sizes is below the datagram's size.
        SHOAL_DASSERT(std::size_t{out._offset[code]} + seen[code] + refs[i].size <=
                      out._data.size());
        std::memcpy(out._data.data() + out._offset[code] + seen[code], b + refs[i].start,
                    refs[i].size);
        seen[code] = static_cast<std::uint16_t>(seen[code] + refs[i].size);
    }

    struct fixed {
        std::uint8_t code;
        std::uint8_t size;
        const char* name;
    };
    static constexpr fixed fixed_sizes[] = {
        {opt::message_type, 1, "message type"},
        {opt::requested_address, 4, "requested address"},
        {opt::server_id, 4, "server identifier"},
        {opt::lease_time, 4, "lease time"},
        {opt::max_message_size, 2, "maximum message size"},
    };
    for (const auto& f : fixed_sizes) {
        if (out.has(f.code) && out._size[f.code] != f.size) {
            return error::format(errc::malformed, 0, "option {} ({}) is {} bytes, not {}", f.code,
                                 f.name, out._size[f.code], f.size);
        }
    }
    if (out.has(opt::client_arch) &&
        (out._size[opt::client_arch] < 2 || out._size[opt::client_arch] % 2)) {
        return error::format(errc::malformed, 0,
                             "option 93 (client architecture) is {} bytes, not 2n",
                             out._size[opt::client_arch]);
    }
    if (out.has(opt::message_type)) {
        std::uint8_t t = out.option(opt::message_type)[0];
        if (t < 1 || t > 8) {
            return error::format(errc::malformed, 0,
                                 "option 53 (message type) has unknown value {}", t);
        }
        out.type = static_cast<message_type>(t);
    }
    return ok();
}

std::optional<std::uint16_t> client_arch(const message& m) noexcept {
    auto v = m.option(opt::client_arch);
    if (v.size() < 2) {
        return std::nullopt;
    }
    return load16(v.data());
}

std::size_t reply_size_max(const message& m) noexcept {
    auto v = m.option(opt::max_message_size);
    std::size_t size = v.size() == 2 ? load16(v.data()) : 0;
    // Option 57 counts the IP and UDP headers too.
    size = size > 28 ? size - 28 : 0;
    return std::clamp(size, client_size_min, packet_size_max);
}

ipv4 option_ipv4(const message& m, std::uint8_t code) noexcept {
    auto v = m.option(code);
    return v.size() == 4 ? load32(v.data()) : 0;
}

bool user_class_is(const message& m, std::string_view name) noexcept {
    std::string_view v = m.option_text(opt::user_class);
    if (v == name) {
        return true;
    }
    // RFC 3004: a list of length-prefixed class names.
    while (!v.empty()) {
        std::size_t size = static_cast<std::uint8_t>(v[0]);
        if (size == 0 || size + 1 > v.size()) {
            return false;
        }
        if (v.substr(1, size) == name) {
            return true;
        }
        v.remove_prefix(size + 1);
    }
    return false;
}

bool vendor_class_starts_with(const message& m, std::string_view prefix) noexcept {
    return m.option_text(opt::vendor_class).starts_with(prefix);
}

std::span<const std::uint8_t> sub_option(std::span<const std::uint8_t> encapsulated,
                                         std::uint8_t code) noexcept {
    std::size_t pos = 0;
    while (pos < encapsulated.size()) {
        std::uint8_t c = encapsulated[pos];
        if (c == opt::pad) {
            pos++;
            continue;
        }
        if (c == opt::end || pos + 1 >= encapsulated.size()) {
            return {};
        }
        std::size_t size = encapsulated[pos + 1];
        if (pos + 2 + size > encapsulated.size()) {
            return {};
        }
        if (c == code) {
            return encapsulated.subspan(pos + 2, size);
        }
        pos += 2 + size;
    }
    return {};
}

builder::builder(std::span<std::uint8_t> buffer, std::size_t size_max) noexcept
    : _buffer(buffer), _size_max(std::min(size_max, buffer.size())) {
    SHOAL_ASSERT(_size_max >= reply_size_min && buffer.size() >= reply_size_min);
    std::memset(_buffer.data(), 0, options_offset);
    store32(_buffer.data() + header_size, magic_cookie);
}

void builder::reply_header(const message& request, ipv4 yiaddr, ipv4 siaddr) noexcept {
    std::uint8_t* b = _buffer.data();
    b[0] = op_reply;
    b[1] = request.htype;
    b[2] = request.hlen;
    b[3] = 0;
    store32(b + 4, request.xid);
    store16(b + 8, 0);
    store16(b + 10, request.flags & flag_broadcast);
    store32(b + 12, 0);
    store32(b + 16, yiaddr);
    store32(b + 20, siaddr);
    store32(b + 24, request.giaddr);
    std::memcpy(b + 28, request.chaddr.data(), request.chaddr.size());
}

bool builder::set_sname(std::string_view text) noexcept {
    if (text.size() >= sname_size) {
        return false;
    }
    std::memset(_buffer.data() + sname_offset, 0, sname_size);
    std::memcpy(_buffer.data() + sname_offset, text.data(), text.size());
    return true;
}

bool builder::set_file(std::string_view text) noexcept {
    if (text.size() >= file_size) {
        return false;
    }
    std::memset(_buffer.data() + file_offset, 0, file_size);
    std::memcpy(_buffer.data() + file_offset, text.data(), text.size());
    return true;
}

void builder::set_ciaddr(ipv4 address) noexcept { store32(_buffer.data() + 12, address); }

bool builder::add(std::uint8_t code, std::span<const std::uint8_t> value) noexcept {
    SHOAL_DASSERT(code != opt::pad && code != opt::end);
    std::size_t pieces = value.empty() ? 1 : (value.size() + 254) / 255;
    // Keep one byte for END.
    if (_used + value.size() + 2 * pieces + 1 > _size_max) {
        return false;
    }
    std::size_t done = 0;
    for (std::size_t i = 0; i < pieces; i++) {
        std::size_t size = std::min<std::size_t>(value.size() - done, 255);
        _buffer[_used] = code;
        _buffer[_used + 1] = static_cast<std::uint8_t>(size);
        if (size) {
            std::memcpy(_buffer.data() + _used + 2, value.data() + done, size);
        }
        _used += 2 + size;
        done += size;
    }
    return true;
}

bool builder::add_text(std::uint8_t code, std::string_view text) noexcept {
    return add(code, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

bool builder::add_u8(std::uint8_t code, std::uint8_t value) noexcept {
    return add(code, {&value, 1});
}

bool builder::add_u16(std::uint8_t code, std::uint16_t value) noexcept {
    std::uint8_t v[2];
    store16(v, value);
    return add(code, v);
}

bool builder::add_u32(std::uint8_t code, std::uint32_t value) noexcept {
    std::uint8_t v[4];
    store32(v, value);
    return add(code, v);
}

std::size_t builder::finish() noexcept {
    SHOAL_DASSERT(_used < _size_max);
    _buffer[_used++] = opt::end;
    if (_used < reply_size_min) {
        std::memset(_buffer.data() + _used, 0, reply_size_min - _used);
        _used = reply_size_min;
    }
    return _used;
}

}  // namespace shoal::dhcp
