#include "wire/wire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

namespace shoal::wire {
namespace {

// Big-endian reads and writes at a cursor. The caller checks sizes before reading, so these
// only assert (debug) that they stay inside the span.
class writer {
public:
    explicit writer(std::span<std::byte> out) noexcept : _out(out) {}
    void u8(std::uint8_t v) noexcept { put(&v, 1); }
    void u16(std::uint16_t v) noexcept {
        const std::uint8_t b[2] = {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
        put(b, 2);
    }
    void u32(std::uint32_t v) noexcept {
        u16(static_cast<std::uint16_t>(v >> 16));
        u16(static_cast<std::uint16_t>(v));
    }
    void u64(std::uint64_t v) noexcept {
        u32(static_cast<std::uint32_t>(v >> 32));
        u32(static_cast<std::uint32_t>(v));
    }
    void bytes(const void* p, std::size_t n) noexcept { put(p, n); }
    std::size_t size() const noexcept { return _at; }

private:
    void put(const void* p, std::size_t n) noexcept {
        SHOAL_DASSERT(_at + n <= _out.size());
        std::memcpy(_out.data() + _at, p, n);
        _at += n;
    }
    std::span<std::byte> _out;
    std::size_t _at = 0;
};

class reader {
public:
    explicit reader(std::span<const std::byte> in) noexcept : _in(in) {}
    std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(_in[_at++]); }
    std::uint16_t u16() noexcept {
        const auto hi = u8();
        return static_cast<std::uint16_t>((hi << 8) | u8());
    }
    std::uint32_t u32() noexcept {
        const std::uint32_t hi = u16();
        return (hi << 16) | u16();
    }
    std::uint64_t u64() noexcept {
        const std::uint64_t hi = u32();
        return (hi << 32) | u32();
    }
    void bytes(void* p, std::size_t n) noexcept {
        std::memcpy(p, _in.data() + _at, n);
        _at += n;
    }
    std::size_t offset() const noexcept { return _at; }

private:
    std::span<const std::byte> _in;
    std::size_t _at = 0;
};

void write_header(writer& w, const header& h) noexcept {
    w.u16(magic);
    w.u8(version);
    w.u8(static_cast<std::uint8_t>(h.type));
    w.u32(h.session_id);
    w.u32(h.seq);
}

// HMAC-SHA256 of `message`, cut to tag_size bytes.
void compute_tag(std::span<const std::byte> key, std::span<const std::byte> message,
                 std::byte* tag_out) noexcept {
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int full_size = 0;
    static const unsigned char empty_key = 0;
    const void* key_bytes = key.empty() ? static_cast<const void*>(&empty_key) : key.data();
    HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), full, &full_size);
    SHOAL_ASSERT(full_size >= tag_size);
    std::memcpy(tag_out, full, tag_size);
}

status check_tag(std::span<const std::byte> key, std::span<const std::byte> packet,
                 const char* what) noexcept {
    std::byte expected[tag_size];
    const auto body = packet.first(packet.size() - tag_size);
    compute_tag(key, body, expected);
    if (CRYPTO_memcmp(expected, packet.data() + body.size(), tag_size) != 0) {
        return error::format(errc::corrupt, 0,
                             "{} packet fails its authentication tag (wrong session key, or forged)",
                             what);
    }
    return ok();
}

bool type_known(std::uint8_t t) noexcept { return t >= 1 && t <= 4; }

}  // namespace

result<header> decode_header(std::span<const std::byte> packet) noexcept {
    if (packet.size() < header_size) {
        return error::format(errc::truncated, 0, "packet of {} bytes is shorter than a header",
                             packet.size());
    }
    reader r(packet);
    if (r.u16() != magic) {
        return error(errc::malformed, "not a shoal packet (bad magic)");
    }
    const std::uint8_t v = r.u8();
    if (v != version) {
        return error::format(errc::version, 0, "packet version {} (this build speaks {})", v,
                             version);
    }
    const std::uint8_t t = r.u8();
    if (!type_known(t)) {
        return error::format(errc::malformed, 0, "unknown packet type {}", t);
    }
    header h;
    h.type = static_cast<packet_type>(t);
    h.session_id = r.u32();
    h.seq = r.u32();
    return h;
}

static result<header> expect_type(std::span<const std::byte> packet, packet_type type,
                                  std::size_t size_min, const char* what) noexcept {
    auto h = decode_header(packet);
    if (!h) {
        return h;
    }
    if (h->type != type) {
        return error::format(errc::invalid_argument, 0, "not a {} packet", what);
    }
    if (packet.size() < size_min) {
        return error::format(errc::truncated, 0, "{} packet of {} bytes, needs {}", what,
                             packet.size(), size_min);
    }
    return h;
}

// A packet that steers receivers: its type, its exact size, and its tag under the key.
static result<header> expect_tagged(std::span<const std::byte> packet, packet_type type,
                                    std::size_t size, const char* what,
                                    std::span<const std::byte> key) noexcept {
    auto h = expect_type(packet, type, size, what);
    if (!h) {
        return h;
    }
    if (packet.size() != size) {
        return error::format(errc::malformed, 0, "{} packet of {} bytes, expected {}", what,
                             packet.size(), size);
    }
    SHOAL_RETURN_IF_ERROR(check_tag(key, packet, what));
    return h;
}

result<data_packet> decode_data(std::span<const std::byte> packet) noexcept {
    auto h = expect_type(packet, packet_type::data, data_header_size + 1, "data");
    if (!h) {
        return h.err();
    }
    reader r(packet.subspan(header_size));
    data_packet d;
    d.hdr = *h;
    d.block = r.u32();
    d.esi = r.u8();
    d.k = r.u8();
    d.flags = r.u8();
    (void)r.u8();
    if (d.k == 0 || d.esi >= 255) {
        return error::format(errc::malformed, 0, "data packet with k {} and esi {}", d.k, d.esi);
    }
    d.symbol = packet.subspan(data_header_size);
    return d;
}

result<std::size_t> encode_data_header(const data_packet& packet, std::span<std::byte> out) noexcept {
    if (out.size() < data_header_size) {
        return error(errc::no_space, "buffer too small for a data header");
    }
    writer w(out);
    write_header(w, {packet_type::data, packet.hdr.session_id, packet.hdr.seq});
    w.u32(packet.block);
    w.u8(packet.esi);
    w.u8(packet.k);
    w.u8(packet.flags);
    w.u8(0);
    return w.size();
}

result<announce_packet> decode_announce(std::span<const std::byte> packet,
                                        std::span<const std::byte> key) noexcept {
    auto h = expect_tagged(packet, packet_type::announce, announce_size, "announce", key);
    if (!h) {
        return h.err();
    }
    reader r(packet.subspan(header_size));
    announce_packet a;
    a.hdr = *h;
    const std::uint8_t phase = r.u8();
    if (phase > static_cast<std::uint8_t>(session_phase::done)) {
        return error::format(errc::malformed, 0, "announce with unknown phase {}", phase);
    }
    a.phase = static_cast<session_phase>(phase);
    a.k_max = r.u8();
    a.symbol_size = r.u16();
    a.manifest_size = r.u32();
    a.block_count = r.u32();
    a.position = r.u32();
    a.receiver_count = r.u32();
    a.feedback_interval_us = r.u32();
    a.rate_bps = r.u64();
    r.bytes(a.manifest_sha256.data(), sha256_size);
    if (a.k_max == 0 || a.k_max > 128 || a.symbol_size < 64 || a.position > a.block_count) {
        return error::format(errc::malformed, 0,
                             "announce with k_max {}, symbol size {}, position {} of {} blocks",
                             a.k_max, a.symbol_size, a.position, a.block_count);
    }
    return a;
}

result<std::size_t> encode_announce(const announce_packet& packet, std::span<const std::byte> key,
                                    std::span<std::byte> out) noexcept {
    if (out.size() < announce_size) {
        return error(errc::no_space, "buffer too small for an announce packet");
    }
    writer w(out);
    write_header(w, {packet_type::announce, packet.hdr.session_id, packet.hdr.seq});
    w.u8(static_cast<std::uint8_t>(packet.phase));
    w.u8(packet.k_max);
    w.u16(packet.symbol_size);
    w.u32(packet.manifest_size);
    w.u32(packet.block_count);
    w.u32(packet.position);
    w.u32(packet.receiver_count);
    w.u32(packet.feedback_interval_us);
    w.u64(packet.rate_bps);
    w.bytes(packet.manifest_sha256.data(), sha256_size);
    compute_tag(key, out.first(w.size()), out.data() + w.size());
    return w.size() + tag_size;
}

result<status_packet> decode_status(std::span<const std::byte> packet) noexcept {
    auto h = expect_type(packet, packet_type::status, status_fixed_size, "status");
    if (!h) {
        return h.err();
    }
    reader r(packet.subspan(header_size));
    status_packet s;
    s.hdr = *h;
    s.receiver_id = r.u32();
    s.flags = r.u8();
    s.reserved = r.u8();
    s.run_count = r.u16();
    s.watermark = r.u32();
    s.blocks_complete = r.u32();
    s.bytes_written = r.u64();
    s.loss_ppm = r.u32();
    s.drain_rate_kBps = r.u32();
    const std::size_t runs_size = std::size_t{s.run_count} * loss_run_size;
    if (packet.size() != status_fixed_size + runs_size) {
        return error::format(errc::malformed, 0,
                             "status packet of {} bytes does not hold its {} loss runs",
                             packet.size(), s.run_count);
    }
    s.runs = packet.subspan(status_fixed_size, runs_size);
    for (std::size_t i = 0; i < s.run_count; ++i) {
        const loss_run run = loss_run_at(s, i);
        if (run.block_count == 0 || run.missing == 0 ||
            run.first_block > UINT32_MAX - run.block_count) {
            return error::format(errc::malformed, 0, "status packet loss run {} is empty or wraps",
                                 i);
        }
    }
    return s;
}

loss_run loss_run_at(const status_packet& status, std::size_t index) noexcept {
    SHOAL_ASSERT(index < status.run_count);
    reader r(status.runs.subspan(index * loss_run_size, loss_run_size));
    loss_run run;
    run.first_block = r.u32();
    run.block_count = r.u16();
    run.missing = r.u8();
    return run;
}

result<std::size_t> encode_status(const status_packet& packet, std::span<const loss_run> runs,
                                  std::span<std::byte> out) noexcept {
    const std::size_t size = status_fixed_size + runs.size() * loss_run_size;
    if (runs.size() > UINT16_MAX || out.size() < size) {
        return error::format(errc::no_space, 0, "status packet with {} runs needs {} bytes",
                             runs.size(), size);
    }
    writer w(out);
    write_header(w, {packet_type::status, packet.hdr.session_id, packet.hdr.seq});
    w.u32(packet.receiver_id);
    w.u8(packet.flags);
    w.u8(0);
    w.u16(static_cast<std::uint16_t>(runs.size()));
    w.u32(packet.watermark);
    w.u32(packet.blocks_complete);
    w.u64(packet.bytes_written);
    w.u32(packet.loss_ppm);
    w.u32(packet.drain_rate_kBps);
    for (const loss_run& run : runs) {
        w.u32(run.first_block);
        w.u16(run.block_count);
        w.u8(run.missing);
        w.u8(0);
    }
    return w.size();
}

result<control_packet> decode_control(std::span<const std::byte> packet,
                                      std::span<const std::byte> key) noexcept {
    auto h = expect_tagged(packet, packet_type::control, control_size, "control", key);
    if (!h) {
        return h.err();
    }
    reader r(packet.subspan(header_size));
    control_packet c;
    c.hdr = *h;
    c.receiver_id = r.u32();
    const std::uint8_t command = r.u8();
    if (command < 1 || command > 2) {
        return error::format(errc::malformed, 0, "control packet with unknown command {}", command);
    }
    c.command = static_cast<control_command>(command);
    (void)r.u8();
    (void)r.u16();
    c.rate_floor_kBps = r.u32();
    return c;
}

result<std::size_t> encode_control(const control_packet& packet, std::span<const std::byte> key,
                                   std::span<std::byte> out) noexcept {
    if (out.size() < control_size) {
        return error(errc::no_space, "buffer too small for a control packet");
    }
    writer w(out);
    write_header(w, {packet_type::control, packet.hdr.session_id, packet.hdr.seq});
    w.u32(packet.receiver_id);
    w.u8(static_cast<std::uint8_t>(packet.command));
    w.u8(0);
    w.u16(0);
    w.u32(packet.rate_floor_kBps);
    compute_tag(key, out.first(w.size()), out.data() + w.size());
    return w.size() + tag_size;
}

}  // namespace shoal::wire

namespace shoal::wire {
static_assert(data_header_size == 20);
static_assert(announce_size == 92);
static_assert(status_fixed_size == 44);
static_assert(control_size == 40);
}  // namespace shoal::wire
