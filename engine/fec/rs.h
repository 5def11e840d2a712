// Systematic Reed–Solomon erasure code over GF(2^8), on ISA-L.
//
// A block is k source symbols, each symbol_size bytes, with encoding symbol ids (ESI)
// 0..k-1, followed by repair symbols with ESI k..254. Every repair symbol is one row of a
// Cauchy matrix, so ANY k distinct symbols of a block rebuild it: a receiver needs only a
// count of symbols, not particular ones, and one new repair symbol heals different losses
// at many receivers at once.
//
// Decoding solves only for the erased symbols: with e source symbols missing it inverts an
// e x e matrix (not k x k) and does e*k multiply-adds per byte, so a block that lost 1 of
// 64 symbols costs 1/64 of a full re-encode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/result.h"

namespace shoal::fec {

inline constexpr std::size_t esi_count_max = 255;   // ESIs 0..254 in GF(2^8)
inline constexpr std::size_t k_limit = 128;         // source symbols per block, at most

// Repair symbols a block of k source symbols can have: ESIs k..254.
constexpr std::size_t repair_count_max(std::size_t k) noexcept { return esi_count_max - k; }

// A received repair symbol: its ESI (>= k) and its bytes (symbol_size of them).
struct repair_symbol {
    std::uint8_t esi;
    const std::byte* data;
};

// One codec per thread. All memory (tables, matrices, scratch) is sized in create();
// encode and decode never allocate.
class codec {
public:
    // k_max in [1, k_limit]; symbol_size > 0 (multiples of 64 are fastest).
    static result<codec> create(std::size_t k_max, std::size_t symbol_size) noexcept;

    codec(codec&&) noexcept;
    codec& operator=(codec&&) noexcept;
    ~codec();

    std::size_t k_max() const noexcept;
    std::size_t symbol_size() const noexcept;

    // Computes repair symbols for a block of k source symbols.
    //   source[0..k)        the k source symbols (read)
    //   esis[0..count)      the ESIs wanted, each in [k, 255)
    //   repair_out[0..count) where each is written (symbol_size bytes each, caller-owned)
    // Errors: invalid_argument for k out of [1, k_max] or an ESI out of range.
    status encode(std::size_t k, const std::byte* const* source, const std::uint8_t* esis,
                  std::size_t count, std::byte* const* repair_out) noexcept;

    // Rebuilds the missing source symbols of a block in place.
    //   source[0..k)         the block's k source slots; the present ones hold their bytes,
    //                        the missing ones are written
    //   missing[0..missing_count)  ESIs (< k) of the missing source symbols, distinct
    //   repairs[0..repair_count)   received repair symbols, distinct ESIs >= k
    // Uses the first missing_count repairs. Errors: invalid_argument if
    // repair_count < missing_count or any index is out of range or repeated.
    status decode(std::size_t k, std::byte* const* source, const std::uint8_t* missing,
                  std::size_t missing_count, const repair_symbol* repairs,
                  std::size_t repair_count) noexcept;

private:
    struct state;
    explicit codec(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::fec
