#include "session/layout.h"

#include <algorithm>

namespace shoal::session {

result<layout> layout::create(std::span<const std::uint32_t> object_sizes,
                              std::uint16_t symbol_size, std::uint8_t k_max) {
    if (symbol_size == 0 || k_max == 0 || object_sizes.empty()) {
        return error(errc::invalid_argument, "layout needs a symbol size, k and objects");
    }
    layout l;
    l._symbol_size = symbol_size;
    l._k_max = k_max;
    l._first_block.reserve(object_sizes.size());
    l._object_size.assign(object_sizes.begin(), object_sizes.end());
    std::uint64_t next = 0;
    for (std::size_t i = 0; i < object_sizes.size(); ++i) {
        if (object_sizes[i] == 0) {
            return error::format(errc::invalid_argument, 0, "object {} is empty", i);
        }
        l._first_block.push_back(static_cast<std::uint32_t>(next));
        next += blocks_for(object_sizes[i], symbol_size, k_max);
        if (next > UINT32_MAX) {
            return error(errc::invalid_argument, "session has more than 2^32 blocks");
        }
    }
    l._block_count = static_cast<std::uint32_t>(next);
    return l;
}

block_info layout::block(std::uint32_t block) const noexcept {
    SHOAL_DASSERT(block < _block_count);
    // The last object whose first block is <= block.
    const auto it = std::upper_bound(_first_block.begin(), _first_block.end(), block);
    const auto object = static_cast<std::uint32_t>(it - _first_block.begin() - 1);
    block_info b;
    b.object = object;
    b.index_in_object = block - _first_block[object];
    const std::uint64_t symbols = (std::uint64_t{_object_size[object]} + _symbol_size - 1) / _symbol_size;
    const std::uint64_t before = std::uint64_t{b.index_in_object} * _k_max;
    b.k = static_cast<std::uint8_t>(std::min<std::uint64_t>(_k_max, symbols - before));
    return b;
}

}  // namespace shoal::session
