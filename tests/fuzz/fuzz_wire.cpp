// Every decoder of wire.h on hostile bytes, and the promise that encoder and decoder agree:
//  - decode(bytes) never reads outside bytes, and what it accepts re-encodes to the same
//    bytes, reserved bytes apart;
//  - decode(encode(fields)) gives the fields back, and fails exactly when the fields break
//    the decoder's rules.
// The input is read twice: whole, as a packet, and as field values for the round trips.
// Announce and control packets are also re-tagged under the key, so that the fuzzer gets
// past authentication to the parsing behind it.
#include <fuzzer/FuzzedDataProvider.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_support.h"
#include "wire/wire.h"

namespace {

using namespace shoal;
using namespace shoal::wire;
using shoal::fuzz::key;

using bytes = std::vector<std::byte>;

// Bytes equal outside the listed offsets (reserved bytes the decoder ignores).
bool same_except(std::span<const std::byte> a, std::span<const std::byte> b,
                 std::initializer_list<std::size_t> ignored) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i] && std::find(ignored.begin(), ignored.end(), i) == ignored.end()) {
            return false;
        }
    }
    return true;
}

// The packet with its last tag_size bytes replaced by the right tag under the key.
bytes retagged(std::span<const std::byte> packet) {
    bytes out(packet.begin(), packet.end());
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int full_size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(out.data()), out.size() - tag_size, full,
         &full_size);
    std::memcpy(out.data() + out.size() - tag_size, full, tag_size);
    return out;
}

// The encoder succeeded and wrote `size` bytes.
bool wrote(const result<std::size_t>& r, std::size_t size) { return r && *r == size; }

bool same_header(const header& a, const header& b) {
    return a.type == b.type && a.session_id == b.session_id && a.seq == b.seq;
}

void check_header(std::span<const std::byte> in) {
    auto h = decode_header(in);
    if (!h) {
        return;
    }
    FUZZ_CHECK(in.size() >= header_size);
    // Any header it accepts, a data header encodes back to (type byte apart).
    std::byte out[data_header_size];
    data_packet d;
    d.hdr = *h;
    FUZZ_CHECK(encode_data_header(d, out).has_value());
    FUZZ_CHECK(same_except(std::span(out).first(header_size), in.first(header_size), {3}));
}

void check_data(std::span<const std::byte> in) {
    auto d = decode_data(in);
    if (!d) {
        return;
    }
    FUZZ_CHECK(d->hdr.type == packet_type::data && d->k != 0 && d->esi != 255);
    FUZZ_CHECK(d->symbol.data() == in.data() + data_header_size &&
               d->symbol.size() == in.size() - data_header_size && !d->symbol.empty());
    std::byte out[data_header_size];
    FUZZ_CHECK(wrote(encode_data_header(*d, out), data_header_size));
    FUZZ_CHECK(same_except(out, in.first(data_header_size), {19}));
}

void check_status(std::span<const std::byte> in) {
    auto s = decode_status(in);
    if (!s) {
        return;
    }
    FUZZ_CHECK(s->hdr.type == packet_type::status);
    FUZZ_CHECK(s->runs.size() == std::size_t{s->run_count} * loss_run_size);
    std::vector<loss_run> runs;
    for (std::size_t i = 0; i < s->run_count; ++i) {
        const loss_run r = loss_run_at(*s, i);
        FUZZ_CHECK(r.block_count != 0 && r.missing != 0);
        FUZZ_CHECK(std::uint64_t{r.first_block} + r.block_count <= UINT32_MAX);
        runs.push_back(r);
    }
    bytes out(in.size());
    FUZZ_CHECK(wrote(encode_status(*s, runs, out), in.size()));
    // Reserved: byte 17 of the fixed part and the last byte of every run.
    const std::size_t reserved = header_size + 5;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const bool run_pad = i >= status_fixed_size && (i - status_fixed_size) % loss_run_size == 7;
        FUZZ_CHECK(out[i] == in[i] || i == reserved || run_pad);
    }
}

void check_announce(std::span<const std::byte> in) {
    auto a = decode_announce(in, key);
    if (in.size() != announce_size) {
        FUZZ_CHECK(!a);
        return;
    }
    const bytes tagged = retagged(in);
    auto b = decode_announce(tagged, key);
    FUZZ_CHECK(!a || b);  // if it passed with its own tag, the same tag passes again
    if (!b) {
        return;
    }
    // No reserved bytes: what it accepts encodes back to exactly the same packet.
    bytes out(announce_size);
    FUZZ_CHECK(wrote(encode_announce(*b, key, out), announce_size));
    FUZZ_CHECK(out == tagged);
}

void check_control(std::span<const std::byte> in) {
    auto c = decode_control(in, key);
    if (in.size() != control_size) {
        FUZZ_CHECK(!c);
        return;
    }
    const bytes tagged = retagged(in);
    auto d = decode_control(tagged, key);
    FUZZ_CHECK(!c || d);
    if (!d) {
        return;
    }
    FUZZ_CHECK(d->command == control_command::fall_back || d->command == control_command::catch_up);
    bytes out(control_size);
    FUZZ_CHECK(wrote(encode_control(*d, key, out), control_size));
    // Bytes 17..19 are reserved; the tag covers them, so it differs when they are not zero.
    FUZZ_CHECK(std::memcmp(out.data(), tagged.data(), 17) == 0);
    FUZZ_CHECK(std::memcmp(out.data() + 20, tagged.data() + 20, 4) == 0);
}

// ---- fields -> bytes -> fields -------------------------------------------------------

void round_trip_announce(FuzzedDataProvider& in) {
    announce_packet a;
    a.hdr.type = packet_type::announce;
    a.hdr.session_id = in.ConsumeIntegral<std::uint32_t>();
    a.hdr.seq = in.ConsumeIntegral<std::uint32_t>();
    a.phase = static_cast<session_phase>(in.ConsumeIntegral<std::uint8_t>());
    a.k_max = in.ConsumeIntegral<std::uint8_t>();
    a.symbol_size = in.ConsumeIntegral<std::uint16_t>();
    a.manifest_size = in.ConsumeIntegral<std::uint32_t>();
    a.block_count = in.ConsumeIntegral<std::uint32_t>();
    a.position = in.ConsumeIntegral<std::uint32_t>();
    a.receiver_count = in.ConsumeIntegral<std::uint32_t>();
    a.feedback_interval_us = in.ConsumeIntegral<std::uint32_t>();
    a.rate_bps = in.ConsumeIntegral<std::uint64_t>();
    for (auto& b : a.manifest_sha256) {
        b = in.ConsumeIntegral<std::uint8_t>();
    }
    const bool valid = static_cast<std::uint8_t>(a.phase) <= 3 && a.k_max >= 1 && a.k_max <= 128 &&
                       a.symbol_size >= 64 && a.position <= a.block_count;

    bytes out(announce_size);
    FUZZ_CHECK(!encode_announce(a, key, std::span(out).first(announce_size - 1)));
    FUZZ_CHECK(wrote(encode_announce(a, key, out), announce_size));
    auto back = decode_announce(out, key);
    FUZZ_CHECK(back.has_value() == valid);
    if (!back) {
        return;
    }
    FUZZ_CHECK(same_header(back->hdr, a.hdr) && back->phase == a.phase && back->k_max == a.k_max &&
               back->symbol_size == a.symbol_size && back->manifest_size == a.manifest_size &&
               back->block_count == a.block_count && back->position == a.position &&
               back->receiver_count == a.receiver_count &&
               back->feedback_interval_us == a.feedback_interval_us &&
               back->rate_bps == a.rate_bps && back->manifest_sha256 == a.manifest_sha256);
    // The tag binds every byte: one flipped bit, or another key, and it is refused.
    bytes flipped = out;
    const std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, announce_size * 8 - 1);
    flipped[at / 8] ^= std::byte(1u << (at % 8));
    FUZZ_CHECK(!decode_announce(flipped, key));
    FUZZ_CHECK(!decode_announce(out, key.first(key.size() - 1)));
}

void round_trip_control(FuzzedDataProvider& in) {
    control_packet c;
    c.hdr.type = packet_type::control;
    c.hdr.session_id = in.ConsumeIntegral<std::uint32_t>();
    c.hdr.seq = in.ConsumeIntegral<std::uint32_t>();
    c.receiver_id = in.ConsumeIntegral<std::uint32_t>();
    c.command = static_cast<control_command>(in.ConsumeIntegral<std::uint8_t>());
    c.rate_floor_kBps = in.ConsumeIntegral<std::uint32_t>();
    const auto command = static_cast<std::uint8_t>(c.command);
    const bool valid = command == 1 || command == 2;

    bytes out(control_size);
    FUZZ_CHECK(!encode_control(c, key, std::span(out).first(control_size - 1)));
    FUZZ_CHECK(wrote(encode_control(c, key, out), control_size));
    auto back = decode_control(out, key);
    FUZZ_CHECK(back.has_value() == valid);
    if (!back) {
        return;
    }
    FUZZ_CHECK(same_header(back->hdr, c.hdr) && back->receiver_id == c.receiver_id &&
               back->command == c.command && back->rate_floor_kBps == c.rate_floor_kBps);
    bytes flipped = out;
    const std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, control_size * 8 - 1);
    flipped[at / 8] ^= std::byte(1u << (at % 8));
    FUZZ_CHECK(!decode_control(flipped, key));
}

void round_trip_data(FuzzedDataProvider& in) {
    data_packet d;
    d.hdr.type = packet_type::data;
    d.hdr.session_id = in.ConsumeIntegral<std::uint32_t>();
    d.hdr.seq = in.ConsumeIntegral<std::uint32_t>();
    d.block = in.ConsumeIntegral<std::uint32_t>();
    d.esi = in.ConsumeIntegral<std::uint8_t>();
    d.k = in.ConsumeIntegral<std::uint8_t>();
    d.flags = in.ConsumeIntegral<std::uint8_t>();
    const std::size_t symbol_size = in.ConsumeIntegralInRange<std::size_t>(0, 64);
    bytes out(data_header_size + symbol_size, std::byte{0xA5});
    FUZZ_CHECK(!encode_data_header(d, std::span(out).first(data_header_size - 1)));
    FUZZ_CHECK(wrote(encode_data_header(d, out), data_header_size));
    auto back = decode_data(out);
    FUZZ_CHECK(back.has_value() == (d.k != 0 && d.esi != 255 && symbol_size > 0));
    if (!back) {
        return;
    }
    FUZZ_CHECK(same_header(back->hdr, d.hdr) && back->block == d.block && back->esi == d.esi &&
               back->k == d.k && back->flags == d.flags && back->symbol.size() == symbol_size);
}

void round_trip_status(FuzzedDataProvider& in) {
    status_packet s;
    s.hdr.type = packet_type::status;
    s.hdr.session_id = in.ConsumeIntegral<std::uint32_t>();
    s.hdr.seq = in.ConsumeIntegral<std::uint32_t>();
    s.receiver_id = in.ConsumeIntegral<std::uint32_t>();
    s.flags = in.ConsumeIntegral<std::uint8_t>();
    s.watermark = in.ConsumeIntegral<std::uint32_t>();
    s.blocks_complete = in.ConsumeIntegral<std::uint32_t>();
    s.bytes_written = in.ConsumeIntegral<std::uint64_t>();
    s.loss_ppm = in.ConsumeIntegral<std::uint32_t>();
    s.drain_rate_kBps = in.ConsumeIntegral<std::uint32_t>();
    std::vector<loss_run> runs(in.ConsumeIntegralInRange<std::size_t>(0, 32));
    bool valid = true;
    for (auto& r : runs) {
        r.first_block = in.ConsumeIntegral<std::uint32_t>();
        r.block_count = in.ConsumeIntegral<std::uint16_t>();
        r.missing = in.ConsumeIntegral<std::uint8_t>();
        valid = valid && r.block_count != 0 && r.missing != 0 &&
                std::uint64_t{r.first_block} + r.block_count <= UINT32_MAX;
    }
    const std::size_t size = status_fixed_size + runs.size() * loss_run_size;
    bytes out(size);
    FUZZ_CHECK(!encode_status(s, runs, std::span(out).first(size - 1)));
    FUZZ_CHECK(wrote(encode_status(s, runs, out), size));
    auto back = decode_status(out);
    FUZZ_CHECK(back.has_value() == valid);
    if (!back) {
        return;
    }
    FUZZ_CHECK(same_header(back->hdr, s.hdr) && back->receiver_id == s.receiver_id &&
               back->flags == s.flags && back->run_count == runs.size() &&
               back->watermark == s.watermark && back->blocks_complete == s.blocks_complete &&
               back->bytes_written == s.bytes_written && back->loss_ppm == s.loss_ppm &&
               back->drain_rate_kBps == s.drain_rate_kBps);
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const loss_run r = loss_run_at(*back, i);
        FUZZ_CHECK(r.first_block == runs[i].first_block && r.block_count == runs[i].block_count &&
                   r.missing == runs[i].missing);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // libFuzzer hands over a heap block of exactly `size` bytes: ASan sees any read past it.
    const std::span packet(reinterpret_cast<const std::byte*>(data), size);
    check_header(packet);
    check_data(packet);
    check_status(packet);
    check_announce(packet);
    check_control(packet);

    FuzzedDataProvider fields(data, size);
    switch (fields.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: round_trip_announce(fields); break;
    case 1: round_trip_control(fields); break;
    case 2: round_trip_data(fields); break;
    case 3: round_trip_status(fields); break;
    }
    return 0;
}
