#include "fec/rs.h"

#include <isa-l.h>

#include <climits>
#include <cstring>
#include <new>
#include <utility>

#include "common/check.h"

namespace shoal::fec {
namespace {

// ISA-L takes symbol lengths as int.
constexpr std::size_t symbol_size_max = INT_MAX;

// ec_init_tables expands each coefficient into 32 bytes of lookup tables.
constexpr std::size_t table_bytes_per_coefficient = 32;

// Rows of coefficients (and of expanded tables) one ec_encode_data pass can take. Decoding
// needs at most k <= k_max <= k_limit rows, so it always runs in one pass; encoding more
// than k_limit repairs (only possible for k < 127) runs in two.
constexpr std::size_t pass_rows_max = k_limit;

// Tables and data are read with vector loads; keep them on cache-line boundaries.
constexpr std::align_val_t scratch_alignment{64};

struct aligned_delete {
    void operator()(unsigned char* p) const noexcept { ::operator delete[](p, scratch_alignment); }
};
using scratch_bytes = std::unique_ptr<unsigned char[], aligned_delete>;

scratch_bytes allocate_scratch(std::size_t size) noexcept {
    return scratch_bytes(
        static_cast<unsigned char*>(::operator new[](size, scratch_alignment, std::nothrow)));
}

// Set of ESIs seen so far, to reject repeats without allocating.
class esi_set {
public:
    // True if esi was not in the set (and adds it).
    bool insert(std::uint8_t esi) noexcept {
        const std::uint64_t bit = std::uint64_t{1} << (esi % 64);
        const bool fresh = (_bits[esi / 64] & bit) == 0;
        _bits[esi / 64] |= bit;
        return fresh;
    }
    bool contains(std::uint8_t esi) const noexcept {
        return (_bits[esi / 64] & (std::uint64_t{1} << (esi % 64))) != 0;
    }

private:
    std::uint64_t _bits[4] = {};
};

}  // namespace

struct codec::state {
    std::size_t k_max = 0;
    std::size_t symbol_size = 0;

    // Cauchy coefficient of repair ESI r over source column j is 1 / (r ^ j) in GF(2^8)
    // (r >= k > j, so r ^ j != 0). It does not depend on k, so one inverse table serves
    // every block length; it is what gf_gen_cauchy1_matrix puts in rows >= k.
    unsigned char inverse[256] = {};

    scratch_bytes coefficients;   // pass_rows_max x k_max: rows fed to ec_init_tables
    scratch_bytes tables;         // the same rows expanded, x 32 bytes each
    scratch_bytes submatrix;      // k_max x k_max: repair rows x missing columns
    scratch_bytes submatrix_inv;  // k_max x k_max: its inverse

    // Pointer arrays handed to ec_encode_data. ISA-L takes unsigned char** for its inputs
    // although it only reads them.
    std::unique_ptr<unsigned char*[]> inputs;   // k_max
    std::unique_ptr<unsigned char*[]> outputs;  // pass_rows_max

    // `tables` still holds the expansion for the last single-pass encode of these ESIs: a
    // sender encodes every block of a chunk with the same k and ESIs, and expanding
    // k x count coefficients costs about as much as encoding a symbol's worth of bytes.
    // Decoding overwrites the tables and clears the key.
    bool tables_hold_encode = false;
    std::size_t tables_k = 0;
    std::size_t tables_count = 0;
    std::uint8_t tables_esis[pass_rows_max] = {};

    unsigned char cauchy(std::size_t esi, std::size_t column) const noexcept {
        return inverse[esi ^ column];
    }
};

result<codec> codec::create(std::size_t k_max, std::size_t symbol_size) noexcept {
    if (k_max < 1 || k_max > k_limit) {
        return error::format(errc::invalid_argument, 0,
                             "fec: k_max {} is outside [1, {}]; use shorter blocks", k_max,
                             k_limit);
    }
    if (symbol_size == 0 || symbol_size > symbol_size_max) {
        return error::format(errc::invalid_argument, 0,
                             "fec: symbol size {} bytes is outside [1, {}]", symbol_size,
                             symbol_size_max);
    }
    auto s = std::unique_ptr<state>(new (std::nothrow) state);
    if (!s) {
        return error(errc::no_space, "fec: cannot allocate codec state");
    }
    s->k_max = k_max;
    s->symbol_size = symbol_size;
    for (unsigned a = 1; a < 256; ++a) {
        s->inverse[a] = gf_inv(static_cast<unsigned char>(a));
    }
    s->coefficients = allocate_scratch(pass_rows_max * k_max);
    s->tables = allocate_scratch(pass_rows_max * k_max * table_bytes_per_coefficient);
    s->submatrix = allocate_scratch(k_max * k_max);
    s->submatrix_inv = allocate_scratch(k_max * k_max);
    s->inputs.reset(new (std::nothrow) unsigned char*[k_max]);
    s->outputs.reset(new (std::nothrow) unsigned char*[pass_rows_max]);
    if (!s->coefficients || !s->tables || !s->submatrix || !s->submatrix_inv || !s->inputs ||
        !s->outputs) {
        return error::format(errc::no_space, 0, "fec: cannot allocate scratch for k_max {}",
                             k_max);
    }
    return codec(std::move(s));
}

codec::codec(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
codec::codec(codec&&) noexcept = default;
codec& codec::operator=(codec&&) noexcept = default;
codec::~codec() = default;

std::size_t codec::k_max() const noexcept { return _s->k_max; }
std::size_t codec::symbol_size() const noexcept { return _s->symbol_size; }

status codec::encode(std::size_t k, const std::byte* const* source, const std::uint8_t* esis,
                     std::size_t count, std::byte* const* repair_out) noexcept {
    SHOAL_DASSERT(_s != nullptr);  // not a moved-from codec
    state& s = *_s;
    if (k < 1 || k > s.k_max) {
        return error::format(errc::invalid_argument, 0,
                             "fec encode: k {} is outside [1, {}] for this codec", k, s.k_max);
    }
    if (count == 0) {
        return ok();
    }
    if (source == nullptr || esis == nullptr || repair_out == nullptr) {
        return error(errc::invalid_argument, "fec encode: null source, ESI or output array");
    }
    for (std::size_t j = 0; j < k; ++j) {
        if (source[j] == nullptr) {
            return error::format(errc::invalid_argument, 0,
                                 "fec encode: source symbol {} is null", j);
        }
    }
    for (std::size_t i = 0; i < count; ++i) {
        if (esis[i] < k || esis[i] >= esi_count_max) {
            return error::format(errc::invalid_argument, 0,
                                 "fec encode: repair ESI {} is outside [{}, {}) for k {}",
                                 esis[i], k, esi_count_max, k);
        }
        if (repair_out[i] == nullptr) {
            return error::format(errc::invalid_argument, 0,
                                 "fec encode: output for repair ESI {} is null", esis[i]);
        }
    }

    for (std::size_t j = 0; j < k; ++j) {
        s.inputs[j] = reinterpret_cast<unsigned char*>(const_cast<std::byte*>(source[j]));
    }
    const int len = static_cast<int>(s.symbol_size);
    // More than pass_rows_max repairs (k < 127 only) take a second pass over the source.
    for (std::size_t first = 0; first < count; first += pass_rows_max) {
        const std::size_t rows = count - first < pass_rows_max ? count - first : pass_rows_max;
        const std::uint8_t* pass_esis = esis + first;
        const bool cached = s.tables_hold_encode && s.tables_k == k && s.tables_count == rows &&
                            std::memcmp(s.tables_esis, pass_esis, rows) == 0;
        if (!cached) {
            for (std::size_t i = 0; i < rows; ++i) {
                unsigned char* row = s.coefficients.get() + i * k;
                for (std::size_t j = 0; j < k; ++j) {
                    row[j] = s.cauchy(pass_esis[i], j);
                }
            }
            ec_init_tables(static_cast<int>(k), static_cast<int>(rows), s.coefficients.get(),
                           s.tables.get());
            // Only a single-pass encode leaves tables that match a whole request.
            s.tables_hold_encode = count <= pass_rows_max;
            s.tables_k = k;
            s.tables_count = rows;
            std::memcpy(s.tables_esis, pass_esis, rows);
        }
        for (std::size_t i = 0; i < rows; ++i) {
            s.outputs[i] = reinterpret_cast<unsigned char*>(repair_out[first + i]);
        }
        ec_encode_data(len, static_cast<int>(k), static_cast<int>(rows), s.tables.get(),
                       s.inputs.get(), s.outputs.get());
    }
    return ok();
}

status codec::decode(std::size_t k, std::byte* const* source, const std::uint8_t* missing,
                     std::size_t missing_count, const repair_symbol* repairs,
                     std::size_t repair_count) noexcept {
    SHOAL_DASSERT(_s != nullptr);  // not a moved-from codec
    state& s = *_s;
    if (k < 1 || k > s.k_max) {
        return error::format(errc::invalid_argument, 0,
                             "fec decode: k {} is outside [1, {}] for this codec", k, s.k_max);
    }
    if (missing_count == 0) {
        return ok();
    }
    if (source == nullptr || missing == nullptr || repairs == nullptr) {
        return error(errc::invalid_argument, "fec decode: null source, missing or repair array");
    }
    if (missing_count > k) {
        return error::format(errc::invalid_argument, 0,
                             "fec decode: {} symbols missing from a block of k {}",
                             missing_count, k);
    }
    if (repair_count < missing_count) {
        return error::format(errc::invalid_argument, 0,
                             "fec decode: {} source symbols missing but only {} repairs; wait "
                             "for more repair symbols",
                             missing_count, repair_count);
    }
    if (repair_count > repair_count_max(k)) {
        return error::format(errc::invalid_argument, 0,
                             "fec decode: {} repairs for k {}, more than the {} distinct ESIs",
                             repair_count, k, repair_count_max(k));
    }
    for (std::size_t j = 0; j < k; ++j) {
        if (source[j] == nullptr) {
            return error::format(errc::invalid_argument, 0, "fec decode: source slot {} is null",
                                 j);
        }
    }
    esi_set lost;
    for (std::size_t i = 0; i < missing_count; ++i) {
        if (missing[i] >= k) {
            return error::format(errc::invalid_argument, 0,
                                 "fec decode: missing ESI {} is not a source ESI of k {}",
                                 missing[i], k);
        }
        if (!lost.insert(missing[i])) {
            return error::format(errc::invalid_argument, 0,
                                 "fec decode: missing ESI {} is listed twice", missing[i]);
        }
    }
    esi_set received;
    for (std::size_t i = 0; i < repair_count; ++i) {
        const std::uint8_t esi = repairs[i].esi;
        if (esi < k || esi >= esi_count_max) {
            return error::format(errc::invalid_argument, 0,
                                 "fec decode: repair ESI {} is outside [{}, {}) for k {}", esi, k,
                                 esi_count_max, k);
        }
        if (!received.insert(esi)) {
            return error::format(errc::invalid_argument, 0,
                                 "fec decode: repair ESI {} is listed twice", esi);
        }
        if (repairs[i].data == nullptr) {
            return error::format(errc::invalid_argument, 0,
                                 "fec decode: data of repair ESI {} is null", esi);
        }
    }

    // With M the missing columns, P the present ones and R the first e repairs:
    //   repair_R = C[R][M] * x_M + C[R][P] * x_P
    // so x_M = A^-1 * repair_R + A^-1 * C[R][P] * x_P, with A = C[R][M] (e x e). Over
    // GF(2^8) subtraction is addition. The decode matrix is e x k with the present sources
    // as its first k - e inputs and the repairs as its last e.
    const std::size_t e = missing_count;
    unsigned char* a = s.submatrix.get();
    unsigned char* a_inv = s.submatrix_inv.get();
    for (std::size_t r = 0; r < e; ++r) {
        for (std::size_t c = 0; c < e; ++c) {
            a[r * e + c] = s.cauchy(repairs[r].esi, missing[c]);
        }
    }
    // Every square submatrix of a Cauchy matrix is invertible; failing here means the
    // coefficients are wrong, and decoding on would hand out wrong bytes as the block.
    const int singular = gf_invert_matrix(a, a_inv, static_cast<int>(e));
    SHOAL_ASSERT_MSG(singular == 0, "fec decode: Cauchy submatrix of size {} is singular", e);

    // B = C[R][P], e x (k - e), into the submatrix scratch that the inversion consumed.
    const std::size_t present_count = k - e;
    unsigned char* b = a;
    std::size_t column = 0;
    for (std::size_t j = 0; j < k; ++j) {
        if (lost.contains(static_cast<std::uint8_t>(j))) {
            continue;
        }
        for (std::size_t l = 0; l < e; ++l) {
            b[l * present_count + column] = s.cauchy(repairs[l].esi, j);
        }
        s.inputs[column] = reinterpret_cast<unsigned char*>(source[j]);
        ++column;
    }
    SHOAL_DASSERT(column == present_count);

    // D = [A^-1 * B | A^-1]. The product is itself a small erasure-code multiply (e rows of
    // length k - e, combined by A^-1), so ISA-L's vector code does it: e*e*(k-e) scalar
    // multiplies would cost as much as the symbol bytes at 5% loss.
    unsigned char* d = s.coefficients.get();
    s.tables_hold_encode = false;  // the tables scratch is about to hold decode rows
    if (present_count > 0) {
        unsigned char* b_rows[k_limit];
        unsigned char* d_rows[k_limit];
        for (std::size_t i = 0; i < e; ++i) {
            b_rows[i] = b + i * present_count;
            d_rows[i] = d + i * k;
        }
        ec_init_tables(static_cast<int>(e), static_cast<int>(e), a_inv, s.tables.get());
        ec_encode_data(static_cast<int>(present_count), static_cast<int>(e),
                       static_cast<int>(e), s.tables.get(), b_rows, d_rows);
    }
    for (std::size_t i = 0; i < e; ++i) {
        std::memcpy(d + i * k + present_count, a_inv + i * e, e);
        s.inputs[present_count + i] =
            reinterpret_cast<unsigned char*>(const_cast<std::byte*>(repairs[i].data));
        s.outputs[i] = reinterpret_cast<unsigned char*>(source[missing[i]]);
    }

    ec_init_tables(static_cast<int>(k), static_cast<int>(e), d, s.tables.get());
    ec_encode_data(static_cast<int>(s.symbol_size), static_cast<int>(k), static_cast<int>(e),
                   s.tables.get(), s.inputs.get(), s.outputs.get());
    return ok();
}

}  // namespace shoal::fec
