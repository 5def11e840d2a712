// How a session's objects are cut into FEC blocks. Object 0 is the session manifest;
// object i+1 is chunk i. Each object's wire bytes are cut into symbol_size symbols (the
// last one zero-padded) and the symbols into blocks of k_max (the last block of an object
// may be shorter). Blocks are numbered across all objects, in order. Sender and receivers
// compute the same layout from the same manifest, so packets carry only a block index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"

namespace shoal::session {

struct block_info {
    std::uint32_t object = 0;        // 0: manifest, i+1: chunk i
    std::uint32_t index_in_object = 0;
    std::uint8_t k = 0;              // source symbols in this block
};

class layout {
public:
    // object_sizes[i]: wire bytes of object i (each > 0). Errors: invalid_argument when a
    // size is 0 or the total passes the 2^32 block limit.
    static result<layout> create(std::span<const std::uint32_t> object_sizes,
                                 std::uint16_t symbol_size, std::uint8_t k_max);

    std::uint32_t block_count() const noexcept { return _block_count; }
    std::uint32_t object_count() const noexcept { return static_cast<std::uint32_t>(_first_block.size()); }
    std::uint16_t symbol_size() const noexcept { return _symbol_size; }
    std::uint8_t k_max() const noexcept { return _k_max; }

    std::uint32_t first_block(std::uint32_t object) const noexcept { return _first_block[object]; }
    std::uint32_t object_block_count(std::uint32_t object) const noexcept {
        return (object + 1 < object_count() ? _first_block[object + 1] : _block_count) -
               _first_block[object];
    }
    std::uint32_t object_size(std::uint32_t object) const noexcept { return _object_size[object]; }
    // Bytes a buffer for this object needs: whole blocks of whole symbols.
    std::size_t object_buffer_size(std::uint32_t object) const noexcept {
        return std::size_t{object_block_count(object)} * _k_max * _symbol_size;
    }

    // The block's object, index in it and k. block < block_count().
    block_info block(std::uint32_t block) const noexcept;
    // Byte offset of a block's first symbol within its object's buffer.
    std::size_t block_offset(const block_info& b) const noexcept {
        return std::size_t{b.index_in_object} * _k_max * _symbol_size;
    }

private:
    std::vector<std::uint32_t> _first_block;
    std::vector<std::uint32_t> _object_size;
    std::uint32_t _block_count = 0;
    std::uint16_t _symbol_size = 0;
    std::uint8_t _k_max = 0;
};

// Blocks an object of `size` bytes needs.
constexpr std::uint64_t blocks_for(std::uint64_t size, std::uint16_t symbol_size,
                                   std::uint8_t k_max) noexcept {
    const std::uint64_t symbols = (size + symbol_size - 1) / symbol_size;
    return (symbols + k_max - 1) / k_max;
}

}  // namespace shoal::session
