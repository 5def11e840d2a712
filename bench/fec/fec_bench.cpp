// Throughput of the FEC codec on full-size UDP payloads, in source bytes per second: encode
// with 1, 4 and 16 repairs, and decode at about 1% and 5% loss, both with the codec's
// e x e solve and with the textbook decode (ISA-L's own example) that inverts the k x k
// matrix of the received rows for every block. The two decode families run on the same
// blocks and erasure patterns, so their ratio reads straight off one run.
#include <benchmark/benchmark.h>

#include <isa-l.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "fec/rs.h"

namespace {

using shoal::fec::esi_count_max;

// The session's symbol: a 1472-byte UDP payload less the 20-byte data header.
constexpr std::size_t udp_payload_size = 1452;

// Set when a benchmark could not run or a decode rebuilt wrong bytes: the program then
// exits non-zero, so the smoke run in CI fails instead of printing a line nobody reads.
bool g_failed = false;

void fail(benchmark::State& state, const char* why) {
    g_failed = true;
    state.SkipWithError(why);
}

// Erasure patterns cycled through, so no benchmark times one lucky pattern.
constexpr std::size_t pattern_count = 16;

// One block with every repair symbol it can have, encoded once up front.
struct block {
    std::size_t k;
    std::vector<std::vector<std::byte>> symbols;  // ESI 0..254; repairs from k on
    std::vector<std::byte*> source;

    block(std::size_t k_, std::uint32_t seed) : k(k_), symbols(esi_count_max) {
        std::mt19937 rng(seed);
        std::uniform_int_distribution<int> byte(0, 255);
        for (auto& s : symbols) {
            s.resize(udp_payload_size);
        }
        for (std::size_t j = 0; j < k; ++j) {
            for (auto& b : symbols[j]) {
                b = static_cast<std::byte>(byte(rng));
            }
            source.push_back(symbols[j].data());
        }
    }

    std::int64_t source_bytes() const { return static_cast<std::int64_t>(k * udp_payload_size); }
};

struct pattern {
    std::vector<std::uint8_t> missing;          // source ESIs lost
    std::vector<shoal::fec::repair_symbol> repairs;  // as many repairs as losses
};

// Encodes every repair of `b` and draws pattern_count erasure patterns of `lost` symbols.
std::vector<pattern> make_patterns(shoal::fec::codec& c, block& b, std::size_t lost) {
    std::vector<std::uint8_t> esis(esi_count_max - b.k);
    std::iota(esis.begin(), esis.end(), static_cast<std::uint8_t>(b.k));
    std::vector<std::byte*> out;
    for (std::uint8_t esi : esis) {
        out.push_back(b.symbols[esi].data());
    }
    std::vector<const std::byte*> in(b.source.begin(), b.source.end());
    if (!c.encode(b.k, in.data(), esis.data(), esis.size(), out.data())) {
        return {};
    }
    std::mt19937 rng(static_cast<std::uint32_t>(b.k * 1000 + lost));
    std::vector<pattern> patterns(pattern_count);
    for (auto& p : patterns) {
        std::vector<std::uint8_t> sources(b.k);
        std::iota(sources.begin(), sources.end(), std::uint8_t{0});
        std::shuffle(sources.begin(), sources.end(), rng);
        p.missing.assign(sources.begin(), sources.begin() + static_cast<std::ptrdiff_t>(lost));
        std::shuffle(esis.begin(), esis.end(), rng);
        for (std::size_t i = 0; i < lost; ++i) {
            p.repairs.push_back({esis[i], b.symbols[esis[i]].data()});
        }
    }
    return patterns;
}

// Repairs for one block. new_esis = 0: the same ESIs every block (proactive repairs,
// whose coefficient tables the codec keeps); 1: different ESIs every block (repairs sent
// on demand), so the codec expands its tables each time.
void encode(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    const auto repair_count = static_cast<std::size_t>(state.range(1));
    const bool new_esis = state.range(2) != 0;
    auto c = shoal::fec::codec::create(k, udp_payload_size);
    if (!c) {
        fail(state, c.err().describe().c_str());
        return;
    }
    block b(k, 1);
    std::vector<const std::byte*> in(b.source.begin(), b.source.end());
    std::vector<std::uint8_t> esis(repair_count);
    std::iota(esis.begin(), esis.end(), static_cast<std::uint8_t>(k));
    std::vector<std::byte*> out;
    for (std::uint8_t esi : esis) {
        out.push_back(b.symbols[esi].data());
    }
    std::size_t first = 0;
    const std::size_t esi_span = esi_count_max - k - repair_count + 1;
    for (auto _ : state) {
        if (new_esis) {
            first = (first + 1) % esi_span;
            std::iota(esis.begin(), esis.end(), static_cast<std::uint8_t>(k + first));
        }
        if (!c->encode(k, in.data(), esis.data(), esis.size(), out.data())) {
            fail(state, "encode failed");
            return;
        }
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * b.source_bytes());
}
BENCHMARK(encode)
    ->ArgNames({"k", "repairs", "new_esis"})
    ->Args({64, 1, 0})
    ->Args({64, 4, 0})
    ->Args({64, 16, 0})
    ->Args({64, 1, 1})
    ->Args({64, 4, 1})
    ->Args({64, 16, 1});

// The codec's decode: an e x e inversion and e x k multiply-adds per byte.
void decode_shrunk(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    const auto lost = static_cast<std::size_t>(state.range(1));
    auto c = shoal::fec::codec::create(k, udp_payload_size);
    if (!c) {
        fail(state, c.err().describe().c_str());
        return;
    }
    block b(k, 2);
    const auto original = b.symbols;
    const std::vector<pattern> patterns = make_patterns(*c, b, lost);
    if (patterns.empty()) {
        fail(state, "encode failed");
        return;
    }
    std::size_t next = 0;
    for (auto _ : state) {
        const pattern& p = patterns[next++ % pattern_count];
        if (!c->decode(k, b.source.data(), p.missing.data(), lost, p.repairs.data(), lost)) {
            fail(state, "decode failed");
            return;
        }
        benchmark::ClobberMemory();
    }
    if (!std::equal(b.symbols.begin(), b.symbols.begin() + static_cast<std::ptrdiff_t>(k),
                    original.begin())) {
        fail(state, "decode rebuilt wrong bytes");
    }
    state.SetBytesProcessed(state.iterations() * b.source_bytes());
}

// ISA-L's example decode: take the k x k rows of the received symbols, invert, and multiply
// the received symbols by the rows of the inverse that belong to the lost ones. Scratch is
// sized before the loop, as the codec's is, so the difference is the arithmetic alone.
void decode_naive(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    const auto lost = static_cast<std::size_t>(state.range(1));
    auto c = shoal::fec::codec::create(k, udp_payload_size);
    if (!c) {
        fail(state, c.err().describe().c_str());
        return;
    }
    block b(k, 2);
    const auto original = b.symbols;
    const std::vector<pattern> patterns = make_patterns(*c, b, lost);
    if (patterns.empty()) {
        fail(state, "encode failed");
        return;
    }
    std::vector<unsigned char> encode_matrix(esi_count_max * k);
    gf_gen_cauchy1_matrix(encode_matrix.data(), static_cast<int>(esi_count_max),
                          static_cast<int>(k));
    std::vector<unsigned char> received_matrix(k * k);
    std::vector<unsigned char> inverse(k * k);
    std::vector<unsigned char> decode_matrix(lost * k);
    std::vector<unsigned char> tables(lost * k * 32);
    std::vector<unsigned char*> received(k);
    std::vector<unsigned char*> outputs(lost);
    std::vector<bool> is_lost(k);

    std::size_t next = 0;
    for (auto _ : state) {
        const pattern& p = patterns[next++ % pattern_count];
        std::fill(is_lost.begin(), is_lost.end(), false);
        for (std::uint8_t m : p.missing) {
            is_lost[m] = true;
        }
        std::size_t row = 0;
        for (std::size_t j = 0; j < k; ++j) {
            if (!is_lost[j]) {
                std::memcpy(&received_matrix[row * k], &encode_matrix[j * k], k);
                received[row++] = reinterpret_cast<unsigned char*>(b.source[j]);
            }
        }
        for (const auto& r : p.repairs) {
            std::memcpy(&received_matrix[row * k], &encode_matrix[r.esi * k], k);
            received[row++] =
                reinterpret_cast<unsigned char*>(const_cast<std::byte*>(r.data));
        }
        if (gf_invert_matrix(received_matrix.data(), inverse.data(), static_cast<int>(k)) != 0) {
            fail(state, "singular matrix");
            return;
        }
        for (std::size_t i = 0; i < lost; ++i) {
            std::memcpy(&decode_matrix[i * k], &inverse[p.missing[i] * k], k);
            outputs[i] = reinterpret_cast<unsigned char*>(b.source[p.missing[i]]);
        }
        ec_init_tables(static_cast<int>(k), static_cast<int>(lost), decode_matrix.data(),
                       tables.data());
        ec_encode_data(static_cast<int>(udp_payload_size), static_cast<int>(k),
                       static_cast<int>(lost), tables.data(), received.data(), outputs.data());
        benchmark::ClobberMemory();
    }
    if (!std::equal(b.symbols.begin(), b.symbols.begin() + static_cast<std::ptrdiff_t>(k),
                    original.begin())) {
        fail(state, "decode rebuilt wrong bytes");
    }
    state.SetBytesProcessed(state.iterations() * b.source_bytes());
}

// About 1% and 5% of k lost.
void decode_cases(benchmark::internal::Benchmark* b) {
    b->ArgNames({"k", "lost"})->Args({64, 1})->Args({64, 4})->Args({128, 2})->Args({128, 7});
}
BENCHMARK(decode_shrunk)->Apply(decode_cases);
BENCHMARK(decode_naive)->Apply(decode_cases);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return g_failed ? 1 : 0;
}
