#include <gtest/gtest.h>

#include <isa-l.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string_view>
#include <vector>

#include "alloc_counter.h"
#include "fec/rs.h"

namespace shoal::fec {
namespace {

// ---- An independent GF(2^8) over x^8 + x^4 + x^3 + x^2 + 1 (0x11d), ISA-L's field. ----

std::uint8_t ref_mul(std::uint8_t a, std::uint8_t b) {
    unsigned product = 0;
    unsigned x = a;
    for (unsigned y = b; y != 0; y >>= 1) {
        if ((y & 1) != 0) {
            product ^= x;
        }
        x <<= 1;
        if ((x & 0x100) != 0) {
            x ^= 0x11d;
        }
    }
    return static_cast<std::uint8_t>(product);
}

std::uint8_t ref_inv(std::uint8_t a) {
    for (unsigned b = 1; b < 256; ++b) {
        if (ref_mul(a, static_cast<std::uint8_t>(b)) == 1) {
            return static_cast<std::uint8_t>(b);
        }
    }
    ADD_FAILURE() << "no inverse of " << unsigned{a};
    return 0;
}

// Repair symbol `esi` of a block, straight from the definition: sum_j src_j / (esi ^ j).
std::vector<std::byte> ref_repair(const std::vector<std::vector<std::byte>>& block,
                                  std::uint8_t esi) {
    std::vector<std::byte> out(block[0].size());
    for (std::size_t j = 0; j < block.size(); ++j) {
        const std::uint8_t c = ref_inv(static_cast<std::uint8_t>(esi ^ j));
        for (std::size_t i = 0; i < out.size(); ++i) {
            out[i] ^= std::byte{ref_mul(c, std::to_integer<std::uint8_t>(block[j][i]))};
        }
    }
    return out;
}

// ---- Helpers. ----

using symbols = std::vector<std::vector<std::byte>>;

symbols random_block(std::mt19937& rng, std::size_t k, std::size_t symbol_size) {
    std::uniform_int_distribution<int> byte(0, 255);
    symbols block(k, std::vector<std::byte>(symbol_size));
    for (auto& symbol : block) {
        for (auto& b : symbol) {
            b = static_cast<std::byte>(byte(rng));
        }
    }
    return block;
}

std::vector<const std::byte*> const_pointers(const symbols& s) {
    std::vector<const std::byte*> p;
    for (const auto& v : s) {
        p.push_back(v.data());
    }
    return p;
}

std::vector<std::byte*> pointers(symbols& s) {
    std::vector<std::byte*> p;
    for (auto& v : s) {
        p.push_back(v.data());
    }
    return p;
}

codec make_codec(std::size_t k_max, std::size_t symbol_size) {
    auto c = codec::create(k_max, symbol_size);
    EXPECT_TRUE(c) << (c ? "" : c.err().describe());
    return std::move(c).value();
}

symbols encode(codec& c, const symbols& block, const std::vector<std::uint8_t>& esis) {
    symbols repairs(esis.size(), std::vector<std::byte>(c.symbol_size()));
    auto in = const_pointers(block);
    auto out = pointers(repairs);
    auto s = c.encode(block.size(), in.data(), esis.data(), esis.size(), out.data());
    EXPECT_TRUE(s) << (s ? "" : s.err().describe());
    return repairs;
}

// Loses `missing` from a copy of `block`, rebuilds it from the repairs with ESIs
// `repair_esis` (encoded fresh), and checks every byte came back.
void lose_and_rebuild(codec& c, const symbols& block, std::vector<std::uint8_t> missing,
                      const std::vector<std::uint8_t>& repair_esis) {
    const symbols repair_bytes = encode(c, block, repair_esis);
    std::vector<repair_symbol> repairs;
    for (std::size_t i = 0; i < repair_esis.size(); ++i) {
        repairs.push_back({repair_esis[i], repair_bytes[i].data()});
    }
    symbols received = block;
    for (std::uint8_t m : missing) {
        std::fill(received[m].begin(), received[m].end(), std::byte{0xee});
    }
    auto slots = pointers(received);
    auto s = c.decode(block.size(), slots.data(), missing.data(), missing.size(), repairs.data(),
                      repairs.size());
    ASSERT_TRUE(s) << s.err().describe();
    for (std::size_t j = 0; j < block.size(); ++j) {
        ASSERT_EQ(received[j], block[j]) << "source symbol " << j << " of k " << block.size();
    }
}

// ---- Golden bytes. ----

constexpr std::size_t golden_k = 4;
constexpr std::size_t golden_symbol_size = 8;

symbols golden_block() {
    symbols block(golden_k, std::vector<std::byte>(golden_symbol_size));
    for (std::size_t j = 0; j < golden_k; ++j) {
        for (std::size_t i = 0; i < golden_symbol_size; ++i) {
            block[j][i] = static_cast<std::byte>((j * golden_symbol_size + i) * 37 + 11);
        }
    }
    return block;
}

// Repair ESI 4 of golden_block(), written down once (computed by hand-written field code
// outside this program) so that a change of field, polynomial or coefficient convention
// shows up here even if the codec and ref_repair moved together.
constexpr std::array<std::uint8_t, golden_symbol_size> golden_repair_esi4 = {
    0x29, 0xbe, 0xdb, 0xe6, 0x4e, 0x88, 0x38, 0x89};

TEST(fec_golden, repairs_match_an_independent_field) {
    const symbols block = golden_block();
    codec c = make_codec(golden_k, golden_symbol_size);
    const std::vector<std::uint8_t> esis = {4, 5, 6, 100, 254};
    const symbols repairs = encode(c, block, esis);
    for (std::size_t i = 0; i < esis.size(); ++i) {
        EXPECT_EQ(repairs[i], ref_repair(block, esis[i])) << "ESI " << unsigned{esis[i]};
    }
    const std::vector<std::byte> esi4(reinterpret_cast<const std::byte*>(golden_repair_esi4.data()),
                                      reinterpret_cast<const std::byte*>(golden_repair_esi4.data()) +
                                          golden_repair_esi4.size());
    EXPECT_EQ(repairs[0], esi4);
}

// The failing twin: one corrupted source byte changes that byte column, and only it, of
// every repair symbol (every Cauchy coefficient is non-zero).
TEST(fec_golden, one_corrupt_source_byte_changes_that_byte_of_every_repair) {
    const symbols block = golden_block();
    codec c = make_codec(golden_k, golden_symbol_size);
    const std::vector<std::uint8_t> esis = {4, 5, 6, 100, 254};
    const symbols good = encode(c, block, esis);
    symbols corrupted = block;
    constexpr std::size_t byte_index = 5;
    corrupted[2][byte_index] ^= std::byte{0x01};
    const symbols bad = encode(c, corrupted, esis);
    for (std::size_t r = 0; r < esis.size(); ++r) {
        EXPECT_NE(bad[r], good[r]);
        for (std::size_t i = 0; i < golden_symbol_size; ++i) {
            if (i == byte_index) {
                EXPECT_NE(bad[r][i], good[r][i]);
            } else {
                EXPECT_EQ(bad[r][i], good[r][i]);
            }
        }
    }
}

TEST(fec_golden, coefficients_are_isal_cauchy_rows) {
    // Rebuild the block of unit vectors: repair byte = coefficient of that column.
    for (std::size_t k : {1, 4, 17, 64, 128}) {
        codec c = make_codec(k, 1);
        symbols unit(k, std::vector<std::byte>(1));
        std::vector<unsigned char> matrix(esi_count_max * k);
        gf_gen_cauchy1_matrix(matrix.data(), static_cast<int>(esi_count_max),
                              static_cast<int>(k));
        for (std::size_t j = 0; j < k; ++j) {
            for (auto& u : unit) {
                u[0] = std::byte{0};
            }
            unit[j][0] = std::byte{1};
            std::vector<std::uint8_t> esis(esi_count_max - k);
            std::iota(esis.begin(), esis.end(), static_cast<std::uint8_t>(k));
            const symbols repairs = encode(c, unit, esis);
            for (std::size_t r = 0; r < esis.size(); ++r) {
                ASSERT_EQ(std::to_integer<unsigned>(repairs[r][0]), matrix[esis[r] * k + j])
                    << "k " << k << " ESI " << unsigned{esis[r]} << " column " << j;
            }
        }
    }
}

// A decode that is fed a corrupted repair rebuilds wrong bytes: FEC does not detect
// corruption, the block hash does. This pins that the rebuilt bytes do come from the repair.
TEST(fec_golden, corrupt_repair_byte_corrupts_the_rebuilt_byte) {
    const symbols block = golden_block();
    codec c = make_codec(golden_k, golden_symbol_size);
    symbols repairs = encode(c, block, {7});
    repairs[0][3] ^= std::byte{0x80};
    symbols received = block;
    const std::uint8_t missing = 1;
    auto slots = pointers(received);
    const repair_symbol r{7, repairs[0].data()};
    ASSERT_TRUE(c.decode(golden_k, slots.data(), &missing, 1, &r, 1));
    for (std::size_t i = 0; i < golden_symbol_size; ++i) {
        if (i == 3) {
            EXPECT_NE(received[1][i], block[1][i]);
        } else {
            EXPECT_EQ(received[1][i], block[1][i]);
        }
    }
}

// ---- Round trips. ----

class fec_round_trip : public ::testing::TestWithParam<std::size_t> {};

TEST_P(fec_round_trip, random_erasures_rebuild_every_byte) {
    const std::size_t k = GetParam();
    constexpr std::size_t symbol_size = 100;  // not a multiple of 16 or 32: tails too
    constexpr int trial_count = 40;
    std::mt19937 rng(static_cast<std::uint32_t>(1000 + k));
    codec c = make_codec(k, symbol_size);
    const std::size_t erasures_max = std::min(k, repair_count_max(k));
    for (int trial = 0; trial < trial_count; ++trial) {
        const symbols block = random_block(rng, k, symbol_size);
        std::vector<std::uint8_t> source_esis(k);
        std::iota(source_esis.begin(), source_esis.end(), std::uint8_t{0});
        std::shuffle(source_esis.begin(), source_esis.end(), rng);
        std::vector<std::uint8_t> repair_esis(repair_count_max(k));
        std::iota(repair_esis.begin(), repair_esis.end(), static_cast<std::uint8_t>(k));
        std::shuffle(repair_esis.begin(), repair_esis.end(), rng);
        const std::size_t e = std::uniform_int_distribution<std::size_t>(1, erasures_max)(rng);
        source_esis.resize(e);
        repair_esis.resize(e);
        lose_and_rebuild(c, block, source_esis, repair_esis);
        if (HasFatalFailure()) {
            FAIL() << "trial " << trial << " with " << e << " erasures";
        }
    }
}

TEST_P(fec_round_trip, all_source_lost_rebuilds_from_repairs_alone) {
    const std::size_t k = GetParam();
    std::mt19937 rng(static_cast<std::uint32_t>(2000 + k));
    codec c = make_codec(k, 64);
    // k = 128 has only 127 repair ESIs, so at most 127 of its sources can be lost.
    const std::size_t e = std::min(k, repair_count_max(k));
    std::vector<std::uint8_t> missing(e);
    std::iota(missing.begin(), missing.end(), std::uint8_t{0});
    std::vector<std::uint8_t> repair_esis(e);
    std::iota(repair_esis.begin(), repair_esis.end(), static_cast<std::uint8_t>(k));
    lose_and_rebuild(c, random_block(rng, k, 64), missing, repair_esis);
}

TEST_P(fec_round_trip, first_and_last_lost_with_the_highest_repair_esis) {
    const std::size_t k = GetParam();
    std::mt19937 rng(static_cast<std::uint32_t>(3000 + k));
    codec c = make_codec(k, 64);
    const symbols block = random_block(rng, k, 64);
    lose_and_rebuild(c, block, {static_cast<std::uint8_t>(k - 1)}, {254});
    if (k >= 2) {
        lose_and_rebuild(c, block, {static_cast<std::uint8_t>(k - 1), 0}, {253, 254});
    }
}

INSTANTIATE_TEST_SUITE_P(k, fec_round_trip, ::testing::Values(1, 2, 17, 64, 127, 128));

TEST(fec_round_trip_cases, only_high_repair_esis_for_a_small_block) {
    std::mt19937 rng(4);
    codec c = make_codec(8, 48);
    const symbols block = random_block(rng, 5, 48);
    lose_and_rebuild(c, block, {0, 1, 2, 3, 4}, {250, 251, 252, 253, 254});
    lose_and_rebuild(c, block, {4, 2, 0}, {254, 250, 252});
}

TEST(fec_round_trip_cases, odd_symbol_sizes_take_every_tail_path) {
    std::mt19937 rng(5);
    for (std::size_t symbol_size : {1, 15, 16, 31, 33, 63, 65, 1440, 1441}) {
        codec c = make_codec(16, symbol_size);
        const symbols block = random_block(rng, 16, symbol_size);
        const symbols repairs = encode(c, block, {16, 40, 200});
        EXPECT_EQ(repairs[1], ref_repair(block, 40)) << "symbol size " << symbol_size;
        lose_and_rebuild(c, block, {0, 7, 15}, {16, 40, 200});
    }
}

TEST(fec_round_trip_cases, extra_repairs_in_any_order_use_the_first_ones) {
    std::mt19937 rng(6);
    codec c = make_codec(32, 64);
    const symbols block = random_block(rng, 32, 64);
    lose_and_rebuild(c, block, {3, 30}, {99, 33, 200, 32, 254});
}

TEST(fec_round_trip_cases, shorter_last_block_shares_the_codec) {
    std::mt19937 rng(7);
    codec c = make_codec(64, 128);
    for (std::size_t k : {64, 10, 64, 1, 12, 10}) {
        const symbols block = random_block(rng, k, 128);
        // Same ESIs for different k: cached encode tables must not leak across k.
        const symbols repairs = encode(c, block, {100, 101});
        EXPECT_EQ(repairs[0], ref_repair(block, 100)) << "k " << k;
        EXPECT_EQ(repairs[1], ref_repair(block, 101)) << "k " << k;
        lose_and_rebuild(c, block, {static_cast<std::uint8_t>(k / 2)}, {100});
        // A decode in between reuses the table scratch; the next encode must rebuild it.
        EXPECT_EQ(encode(c, block, {100, 101}), repairs) << "k " << k;
    }
}

TEST(fec_round_trip_cases, more_repairs_than_one_pass_for_tiny_k) {
    std::mt19937 rng(8);
    for (std::size_t k : {1, 2, 100}) {
        codec c = make_codec(k, 40);
        const symbols block = random_block(rng, k, 40);
        std::vector<std::uint8_t> esis(repair_count_max(k));
        std::iota(esis.begin(), esis.end(), static_cast<std::uint8_t>(k));
        const symbols repairs = encode(c, block, esis);
        for (std::size_t r = 0; r < esis.size(); ++r) {
            ASSERT_EQ(repairs[r], ref_repair(block, esis[r]))
                << "k " << k << " ESI " << unsigned{esis[r]};
        }
    }
}

TEST(fec_round_trip_cases, nothing_missing_is_a_no_op) {
    std::mt19937 rng(9);
    codec c = make_codec(4, 16);
    symbols block = random_block(rng, 4, 16);
    const symbols before = block;
    auto slots = pointers(block);
    EXPECT_TRUE(c.decode(4, slots.data(), nullptr, 0, nullptr, 0));
    EXPECT_EQ(block, before);
}

TEST(fec_round_trip_cases, moved_codec_keeps_working) {
    std::mt19937 rng(10);
    codec a = make_codec(8, 32);
    codec b = std::move(a);
    EXPECT_EQ(b.k_max(), 8U);
    EXPECT_EQ(b.symbol_size(), 32U);
    lose_and_rebuild(b, random_block(rng, 8, 32), {1, 6}, {9, 8});
}

// ---- The hot path does not allocate. ----

TEST(fec_alloc, encode_and_decode_do_not_allocate) {
    constexpr std::size_t k = 64;
    constexpr std::size_t symbol_size = 1440;
    std::mt19937 rng(11);
    codec c = make_codec(k, symbol_size);
    symbols block = random_block(rng, k, symbol_size);
    const symbols original = block;
    const std::vector<std::uint8_t> esis = {64, 65, 66, 67, 200, 254};
    symbols repair_bytes(esis.size(), std::vector<std::byte>(symbol_size));
    std::vector<repair_symbol> repairs;
    for (std::size_t i = 0; i < esis.size(); ++i) {
        repairs.push_back({esis[i], repair_bytes[i].data()});
    }
    const std::vector<std::uint8_t> missing = {0, 13, 40, 63};
    const std::uint8_t bad_missing[] = {5, 5};
    auto in = const_pointers(block);
    auto out = pointers(repair_bytes);
    auto slots = pointers(block);

    const std::size_t before = test::allocation_count();
    for (int round = 0; round < 3; ++round) {
        ASSERT_TRUE(c.encode(k, in.data(), esis.data(), esis.size(), out.data()));
        ASSERT_TRUE(c.encode(k - 3, in.data(), esis.data(), 1, out.data()));  // tables rebuilt
        ASSERT_TRUE(c.encode(k, in.data(), esis.data(), esis.size(), out.data()));
        ASSERT_TRUE(c.decode(k, slots.data(), missing.data(), missing.size(), repairs.data(),
                             repairs.size()));
        ASSERT_TRUE(c.decode(k, slots.data(), missing.data(), 1, repairs.data(), 1));
        // Errors are values built in place, not allocations either.
        ASSERT_FALSE(c.decode(k, slots.data(), bad_missing, 2, repairs.data(), 2));
        ASSERT_FALSE(c.encode(k + 1, in.data(), esis.data(), esis.size(), out.data()));
    }
    EXPECT_EQ(test::allocation_count(), before);
    EXPECT_EQ(block, original);
}

// ---- Bad arguments are errors, not crashes, and leave the block alone. ----

void expect_invalid(const status& s, std::string_view words) {
    ASSERT_FALSE(s) << "expected an error mentioning '" << words << "'";
    EXPECT_EQ(s.err().code(), errc::invalid_argument);
    EXPECT_NE(s.err().context().find(words), std::string_view::npos) << s.err().context();
}

TEST(fec_errors, create_rejects_bad_sizes) {
    for (auto [k_max, symbol_size] : {std::pair<std::size_t, std::size_t>{0, 64},
                                      {k_limit + 1, 64},
                                      {16, 0}}) {
        auto c = codec::create(k_max, symbol_size);
        ASSERT_FALSE(c);
        EXPECT_EQ(c.err().code(), errc::invalid_argument);
    }
    EXPECT_TRUE(codec::create(k_limit, 1));
}

TEST(fec_errors, encode_rejects_bad_k_and_esis) {
    std::mt19937 rng(12);
    codec c = make_codec(8, 16);
    const symbols block = random_block(rng, 8, 16);
    symbols repairs(2, std::vector<std::byte>(16));
    const symbols repairs_before = repairs;
    auto in = const_pointers(block);
    auto out = pointers(repairs);
    const std::uint8_t good[] = {8, 9};
    expect_invalid(c.encode(0, in.data(), good, 2, out.data()), "k 0 is outside [1, 8]");
    expect_invalid(c.encode(9, in.data(), good, 2, out.data()), "k 9 is outside [1, 8]");
    const std::uint8_t source_esi[] = {8, 7};
    expect_invalid(c.encode(8, in.data(), source_esi, 2, out.data()), "repair ESI 7 is outside");
    const std::uint8_t esi_255[] = {255};
    expect_invalid(c.encode(8, in.data(), esi_255, 1, out.data()), "repair ESI 255 is outside");
    expect_invalid(c.encode(8, nullptr, good, 2, out.data()), "null");
    std::byte* null_out[] = {out[0], nullptr};
    expect_invalid(c.encode(8, in.data(), good, 2, null_out), "output for repair ESI 9 is null");
    EXPECT_EQ(repairs, repairs_before);
}

TEST(fec_errors, decode_rejects_bad_indices_and_too_few_repairs) {
    std::mt19937 rng(13);
    constexpr std::size_t k = 8;
    codec c = make_codec(k, 16);
    symbols block = random_block(rng, k, 16);
    const symbols before = block;
    const symbols repair_bytes = random_block(rng, 3, 16);
    auto slots = pointers(block);
    const repair_symbol repairs[] = {{8, repair_bytes[0].data()},
                                     {9, repair_bytes[1].data()},
                                     {254, repair_bytes[2].data()}};
    const std::uint8_t one[] = {2};
    const std::uint8_t two[] = {2, 5};

    expect_invalid(c.decode(0, slots.data(), one, 1, repairs, 1), "k 0 is outside");
    expect_invalid(c.decode(k + 1, slots.data(), one, 1, repairs, 1), "k 9 is outside");
    const std::uint8_t not_source[] = {8};
    expect_invalid(c.decode(k, slots.data(), not_source, 1, repairs, 1),
                   "missing ESI 8 is not a source ESI");
    const std::uint8_t repeated[] = {3, 3};
    expect_invalid(c.decode(k, slots.data(), repeated, 2, repairs, 2),
                   "missing ESI 3 is listed twice");
    expect_invalid(c.decode(k, slots.data(), two, 2, repairs, 1),
                   "2 source symbols missing but only 1 repairs");
    const repair_symbol source_as_repair[] = {{7, repair_bytes[0].data()}};
    expect_invalid(c.decode(k, slots.data(), one, 1, source_as_repair, 1),
                   "repair ESI 7 is outside");
    const repair_symbol esi_255[] = {{255, repair_bytes[0].data()}};
    expect_invalid(c.decode(k, slots.data(), one, 1, esi_255, 1), "repair ESI 255 is outside");
    const repair_symbol twice[] = {{9, repair_bytes[0].data()}, {9, repair_bytes[1].data()}};
    expect_invalid(c.decode(k, slots.data(), two, 2, twice, 2), "repair ESI 9 is listed twice");
    const repair_symbol null_data[] = {{9, nullptr}};
    expect_invalid(c.decode(k, slots.data(), one, 1, null_data, 1), "data of repair ESI 9");
    std::vector<std::uint8_t> too_many(k + 1, 0);
    expect_invalid(c.decode(k, slots.data(), too_many.data(), too_many.size(), repairs, 3),
                   "9 symbols missing from a block of k 8");
    expect_invalid(c.decode(k, nullptr, one, 1, repairs, 1), "null");
    EXPECT_EQ(block, before);
}

}  // namespace
}  // namespace shoal::fec
