// The per-packet cost of the session state machines, without the network: how many
// packets a second one core can produce as a sender, and absorb as a receiver, with no
// loss and with 5% loss (FEC decoding included). Bytes are symbol bytes.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/log.h"
#include "fec/rs.h"
#include "session/chunks.h"
#include "session/layout.h"
#include "session/receiver.h"
#include "session/sender.h"
#include "wire/wire.h"

namespace {

using namespace shoal;

constexpr std::size_t data_size = 32u << 20;
constexpr std::uint16_t symbol_size = 1452;
constexpr std::uint8_t k = 64;

const session::prepared_session& prepared() {
    static std::vector<std::byte> data(data_size);  // raw chunks point into it
    static session::prepared_session p = [] {
        std::mt19937_64 rng(42);
        for (std::size_t i = 0; i < data.size(); i += 8) {
            const std::uint64_t v = rng();
            std::memcpy(data.data() + i, &v, 8);
        }
        auto r = session::prepare_session(data, 4u << 20, 0, 1);
        return std::move(*r);
    }();
    return p;
}

session::sender_config config() {
    session::sender_config c;
    c.session_id = 7;
    c.key.assign(16, std::byte{1});
    c.symbol_size = symbol_size;
    c.k_max = k;
    c.rate_bps = 1'000'000'000'000;  // pacing out of the way
    c.burst_packets_max = 64;
    return c;
}

void sender_produce(benchmark::State& state) {
    log::init(log::level::error);
    const auto& p = prepared();
    std::vector<std::byte> storage(32 * 2048);
    io::packet packets[32];
    std::unique_ptr<session::sender> s;
    std::int64_t now = 0;
    std::int64_t produced = 0;
    for (auto _ : state) {
        if (!s || s->position() >= s->block_count()) {
            state.PauseTiming();
            s = std::move(*session::sender::create(config(), p.objects(), p.manifest_sha256));
            state.ResumeTiming();
        }
        for (std::size_t i = 0; i < 32; ++i) {
            packets[i].data = storage.data() + i * 2048;
        }
        now += 1'000'000;
        const std::size_t n = s->produce(packets, 32, now);
        benchmark::DoNotOptimize(packets[0].data[0]);
        produced += static_cast<std::int64_t>(n);
    }
    state.SetItemsProcessed(produced);
    state.SetBytesProcessed(produced * symbol_size);
}
BENCHMARK(sender_produce);

// Every packet of a session, source symbols plus 16 repairs per block, built once.
struct stream {
    std::vector<std::vector<std::byte>> packets;
    std::vector<std::byte> announce;
};

const stream& make_stream() {
    static stream st = [] {
        stream out;
        const auto& p = prepared();
        std::vector<std::uint32_t> sizes;
        for (const auto& o : p.objects()) {
            sizes.push_back(static_cast<std::uint32_t>(o.size()));
        }
        auto l = *session::layout::create(sizes, symbol_size, k);
        auto codec = *fec::codec::create(k, symbol_size);
        wire::announce_packet a;
        a.hdr.session_id = 7;
        a.hdr.seq = 1;
        a.phase = wire::session_phase::main;
        a.k_max = k;
        a.symbol_size = symbol_size;
        a.manifest_size = static_cast<std::uint32_t>(p.manifest_bytes.size());
        a.block_count = l.block_count();
        a.feedback_interval_us = 1'000'000;
        a.manifest_sha256 = p.manifest_sha256;
        out.announce.resize(wire::announce_size);
        const std::vector<std::byte> key(16, std::byte{1});
        (void)wire::encode_announce(a, key, out.announce);
        const auto objects = p.objects();
        std::vector<std::byte> pad(symbol_size);
        std::uint32_t seq = 2;
        for (std::uint32_t b = 0; b < l.block_count(); ++b) {
            const auto info = l.block(b);
            const auto object = objects[info.object];
            const std::byte* src[fec::k_limit];
            std::vector<std::vector<std::byte>> padded;
            for (std::size_t i = 0; i < info.k; ++i) {
                const std::size_t at = l.block_offset(info) + i * symbol_size;
                if (at + symbol_size <= object.size()) {
                    src[i] = object.data() + at;
                } else {
                    padded.emplace_back(symbol_size, std::byte{0});
                    std::memcpy(padded.back().data(), object.data() + at, object.size() - at);
                    src[i] = padded.back().data();
                }
            }
            for (std::uint8_t esi = 0; esi < info.k + 16; ++esi) {
                std::vector<std::byte> pkt(wire::data_header_size + symbol_size);
                wire::data_packet d;
                d.hdr.session_id = 7;
                d.hdr.seq = seq++;
                d.block = b;
                d.esi = esi;
                d.k = info.k;
                (void)wire::encode_data_header(d, pkt);
                std::byte* dst = pkt.data() + wire::data_header_size;
                if (esi < info.k) {
                    std::memcpy(dst, src[esi], symbol_size);
                } else {
                    (void)codec.encode(info.k, src, &esi, 1, &dst);
                }
                out.packets.push_back(std::move(pkt));
            }
        }
        return out;
    }();
    return st;
}

// Packets a second one receiver absorbs; loss in permille, dropped before on_packet.
void receiver_on_packet(benchmark::State& state) {
    log::init(log::level::error);
    const auto& st = make_stream();
    const auto loss_permille = static_cast<unsigned>(state.range(0));
    std::int64_t delivered = 0;
    std::mt19937 rng(3);
    for (auto _ : state) {
        state.PauseTiming();
        session::receiver_config rc;
        rc.key.assign(16, std::byte{1});
        rc.receiver_id = 9;
        rc.memory_bytes_max = 64u << 20;
        auto r = std::move(*session::receiver::create(rc));
        r->on_packet(st.announce, 0);
        state.ResumeTiming();
        session::completed_chunk c;
        for (const auto& p : st.packets) {
            if (rng() % 1000 < loss_permille) {
                continue;
            }
            r->on_packet(p, 1);
            ++delivered;
            while (r->take_chunk(c)) {
                r->chunk_done(c.chunk, true, 0, 1);  // the disk side is not measured here
            }
        }
        if (r->chunks_written() != prepared().chunk_wire.size()) {
            state.SkipWithError("the receiver did not complete the session");
            return;
        }
    }
    state.SetItemsProcessed(delivered);
    state.SetBytesProcessed(delivered * symbol_size);
}
BENCHMARK(receiver_on_packet)->Arg(0)->Arg(10)->Arg(50)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
