// The receiver state machine driven by a script of packets and caller actions (the record
// format is in fuzz_support.h): raw bytes from the network, and also the honest sender's
// packets — symbols of a real session, keyed announces and controls — so that the fuzzer
// reaches the manifest, chunk assembly, FEC decoding and the hand-over to the writer.
//
// It must never crash, assert or leak, and it must keep its promises:
//  - every status it produces decodes, fits the payload and names blocks of the session;
//  - it accepts only the announced manifest, and bad symbols never end the session;
//  - with only honest packets, every chunk it hands out passes its SHA-256 and decodes to
//    the bytes that were sent.
//
// A receiver lives for one input (the sender's side is built once): a finding then
// replays from its input alone, and leaks in teardown are caught.
#include <zstd.h>

#include <algorithm>
#include <deque>
#include <vector>

#include "common/log.h"
#include "fuzz_support.h"
#include "honest_sender.h"
#include "session/receiver.h"

namespace {

using namespace shoal;
using fuzz::key;
using fuzz::receiver_op;
using fuzz::session_id;
using fuzz::symbol_size;

constexpr std::uint32_t our_id = 0x0000BEEF;
constexpr std::size_t records_max = 4096;   // records of one input, at most
constexpr std::size_t raw_size_max = 2048;  // bytes of one raw packet, at most

// Big-endian fields of the input; zeros once it runs out.
class cursor {
public:
    cursor(const std::uint8_t* data, std::size_t size) : _data(data), _size(size) {}
    bool empty() const { return _at >= _size; }
    std::uint8_t u8() { return _at < _size ? _data[_at++] : 0; }
    std::uint16_t u16() {
        const unsigned hi = u8();  // operands of | are unsequenced: read in two statements
        return static_cast<std::uint16_t>((hi << 8) | u8());
    }
    std::uint32_t u32() {
        const std::uint32_t hi = u16();
        return (hi << 16) | u16();
    }
    std::vector<std::byte> bytes(std::size_t n) {
        n = std::min(n, _size - std::min(_at, _size));
        std::vector<std::byte> out(reinterpret_cast<const std::byte*>(_data + _at),
                                   reinterpret_cast<const std::byte*>(_data + _at + n));
        _at += n;
        return out;
    }

private:
    const std::uint8_t* _data;
    std::size_t _size;
    std::size_t _at = 0;
};

void put_u32(std::byte* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        p[i] = std::byte(v >> (24 - 8 * i));
    }
}

class harness {
public:
    harness(fuzz::honest_sender& tx, const session::receiver_config& config)
        : _tx(tx), _config(config), _status(config.payload_size_max) {
        auto r = session::receiver::create(config);
        FUZZ_CHECK(r.has_value());
        _rx = std::move(*r);
    }

    void run(cursor& in) {
        for (std::size_t n = 0; n < records_max && !in.empty(); ++n) {
            switch (static_cast<receiver_op>(in.u8() % fuzz::receiver_op_count)) {
            case receiver_op::raw_ours: raw(in, true); break;
            case receiver_op::raw: raw(in, false); break;
            case receiver_op::data: data(in); break;
            case receiver_op::announce: announce(in); break;
            case receiver_op::control: control(in); break;
            case receiver_op::status: status(in); break;
            case receiver_op::chunk: chunk(in.u8()); break;
            case receiver_op::time: _now_ns += std::int64_t{in.u16()} * 1'000'000; break;
            }
            _now_ns += 100'000;
            poll();
        }
    }

    // The session's first announce, as the sender sends it.
    void announce_session() { send_announce(_tx.announce); }

private:
    void deliver(std::span<const std::byte> packet) { _rx->on_packet(packet, _now_ns); }

    void raw(cursor& in, bool ours) {
        auto packet = in.bytes(std::min<std::size_t>(in.u16(), raw_size_max));
        if (ours && packet.size() >= 8) {
            put_u32(packet.data() + 4, session_id);
        }
        _tainted = true;
        deliver(packet);
    }

    void data(cursor& in) {
        wire::data_packet d;
        d.block = in.u16() % _tx.layout->block_count();
        d.esi = in.u8();
        const std::uint8_t corrupt = in.u8();
        d.flags = in.u8();
        _seq += in.u8();
        d.hdr = {wire::packet_type::data, session_id, _seq++};
        d.k = _tx.layout->block(d.block).k;
        std::byte packet[wire::data_header_size + symbol_size]{};
        FUZZ_CHECK(wire::encode_data_header(d, packet).has_value());
        std::byte* symbol = packet + wire::data_header_size;
        if (d.esi < fec::esi_count_max) {
            _tx.symbol(d.block, d.esi, symbol);
        }
        if (corrupt != 0) {
            symbol[corrupt % symbol_size] ^= std::byte{corrupt};
            _tainted = true;
        }
        deliver(packet);
    }

    void announce(cursor& in) {
        wire::announce_packet a = _tx.announce;
        a.phase = static_cast<wire::session_phase>(in.u8() % 5);  // 4: one it does not know
        const std::uint8_t perturb = in.u8();
        const std::uint32_t value = in.u32();
        a.position = in.u32();
        a.feedback_interval_us = std::uint32_t{in.u16()} * 1000;
        const std::uint8_t replay = in.u8();
        // An authentic sender that changes the session's shape, or lies about it.
        switch (perturb % 8) {
        case 1: a.k_max = static_cast<std::uint8_t>(value); break;
        case 2: a.symbol_size = static_cast<std::uint16_t>(value); break;
        case 3: a.block_count = value; break;
        case 4: a.manifest_size = value; break;
        case 5:
            a.manifest_sha256[value % 32] ^= 1;
            _hash_lied = true;
            break;
        case 6: a.receiver_count = value; break;
        case 7: a.rate_bps = value; break;
        default: break;
        }
        a.hdr.seq = replay != 0 ? _seq - replay : _seq++;
        send_announce(a);
    }

    void send_announce(const wire::announce_packet& a) {
        _block_count_max = std::max(_block_count_max, a.block_count);
        std::byte packet[wire::announce_size];
        FUZZ_CHECK(wire::encode_announce(a, key, packet).has_value());
        deliver(packet);
    }

    void control(cursor& in) {
        wire::control_packet c;
        c.command = static_cast<wire::control_command>(in.u8());
        c.receiver_id = (in.u8() & 1) != 0 ? our_id : our_id + 1;
        c.rate_floor_kBps = in.u32();
        c.hdr = {wire::packet_type::control, session_id, _seq++};
        std::byte packet[wire::control_size];
        FUZZ_CHECK(wire::encode_control(c, key, packet).has_value());
        deliver(packet);
    }

    // Another receiver's status, overheard.
    void status(cursor& in) {
        wire::status_packet s;
        s.hdr = {wire::packet_type::status, session_id, 0};
        s.receiver_id = in.u32();
        constexpr std::size_t runs_max = 32;
        wire::loss_run runs[runs_max];
        const std::size_t count = in.u8() % runs_max;
        for (std::size_t i = 0; i < count; ++i) {
            runs[i].first_block = in.u16();
            runs[i].block_count = in.u8();
            runs[i].missing = in.u8();
        }
        std::byte packet[wire::status_fixed_size + runs_max * wire::loss_run_size];
        auto size = wire::encode_status(s, {runs, count}, packet);
        FUZZ_CHECK(size.has_value());
        deliver({packet, *size});
    }

    // The writer's side: 0 verify and write, 1 reject, 2 write unverified, 3 hold (a later
    // chunk op settles the oldest held chunk first).
    void chunk(std::uint8_t verdict) {
        verdict %= 4;
        session::completed_chunk c;
        if (verdict != 3 && !_held.empty()) {
            c = _held.front();
            _held.pop_front();
        } else if (!_rx->take_chunk(c)) {
            return;
        } else {
            const auto* m = _rx->manifest();
            FUZZ_CHECK(m != nullptr && c.chunk < m->chunks.size());
            FUZZ_CHECK(c.wire.size() == m->chunks[c.chunk].wire_size);
            if (verdict == 3) {
                _held.push_back(c);
                return;
            }
        }
        const wire::chunk_entry& entry = _tx.prepared.manifest.chunks[c.chunk];
        bool written = verdict != 1;
        if (verdict == 0) {
            std::vector<std::byte> out(entry.raw_size);
            written = session::verify_and_decode(entry, c.wire, out, dctx()).has_value();
            // Honest packets only: the chunk is the one that was sent.
            const auto sent = _tx.data.begin() + static_cast<std::ptrdiff_t>(entry.target_offset);
            FUZZ_CHECK(written || _tainted);
            FUZZ_CHECK(!written || std::equal(out.begin(), out.end(), sent));
        }
        _rx->chunk_done(c.chunk, written, written ? entry.raw_size : 0, _now_ns);
    }

    // Statuses due now, and the promises that hold after every step.
    void poll() {
        io::packet out;
        out.data = _status.data();
        if (_rx->produce(&out, 1, _now_ns) == 1) {
            FUZZ_CHECK(out.size <= _config.payload_size_max);
            auto s = wire::decode_status({out.data, out.size});
            FUZZ_CHECK(s.has_value());
            FUZZ_CHECK(s->receiver_id == our_id && s->hdr.session_id == _rx->session_id());
            for (std::size_t i = 0; i < s->run_count; ++i) {
                const wire::loss_run r = wire::loss_run_at(*s, i);
                FUZZ_CHECK(r.first_block + r.block_count <= _block_count_max);
                FUZZ_CHECK(r.missing <= fec::k_limit);
            }
        }
        FUZZ_CHECK(_rx->next_event_ns(_now_ns) >= _now_ns);
        const std::size_t chunk_count = _tx.prepared.manifest.chunks.size();
        if (const auto* m = _rx->manifest()) {
            FUZZ_CHECK(m->target_size == _tx.prepared.manifest.target_size &&
                       m->chunks.size() == chunk_count);
        }
        FUZZ_CHECK(_rx->chunks_written() <= chunk_count);
        const auto phase = _rx->phase();
        FUZZ_CHECK((phase != session::receiver_phase::complete &&
                    phase != session::receiver_phase::finished) ||
                   _rx->chunks_written() == chunk_count);
        // Data packets carry no tag: a bad symbol may cost a repair, never the session.
        FUZZ_CHECK(phase != session::receiver_phase::failed ||
                   _rx->failure().code() != errc::corrupt || _hash_lied);
    }

    static ZSTD_DCtx* dctx() {
        static ZSTD_DCtx* d = ZSTD_createDCtx();
        return d;
    }

    fuzz::honest_sender& _tx;
    session::receiver_config _config;
    std::unique_ptr<session::receiver> _rx;
    std::vector<std::byte> _status;
    std::deque<session::completed_chunk> _held;
    std::int64_t _now_ns = 1'000'000'000;
    std::uint32_t _seq = 1;
    std::uint32_t _block_count_max = 0;  // the largest any announce claimed
    bool _tainted = false;               // fed something other than the honest sender's packets
    bool _hash_lied = false;             // an authentic announce named another manifest
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static fuzz::honest_sender tx;
    cursor in(data, size);
    // The first byte picks the receiver's configuration.
    const std::uint8_t c = in.u8();
    session::receiver_config config;
    config.receiver_id = our_id;
    config.session_id = (c & 0x01) != 0 ? session_id : 0;
    config.key.assign(key.begin(), key.end());
    if ((c & 0x02) != 0) {
        config.manifest_sha256 = tx.prepared.manifest_sha256;  // given out of band
    }
    config.memory_bytes_max = (c & 0x04) != 0 ? 1024 : 1u << 20;  // 1024: two of three chunks
    config.payload_size_max =
        (c & 0x08) != 0 ? wire::status_fixed_size + 2 * wire::loss_run_size : 1472;
    config.reorder_blocks = (c >> 4) & 3;
    // Limits scaled down, so that an announce at a limit still costs an input little memory.
    config.manifest_size_max = 1u << 20;
    config.block_count_max = 1u << 16;
    config.seed = 1;
    harness h(tx, config);
    if ((c & 0x40) == 0) {
        h.announce_session();  // else the script's first announce starts the session
    }
    h.run(in);
    return 0;
}
