// A pool of equal, aligned buffers carved from one mapping made at start-up. get_burst and
// put_burst take arrays and return counts, never allocate, and never block. Single-threaded:
// give each thread its own pool, or pass buffers between threads through an spsc_ring and
// return them to the owning thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/result.h"

namespace shoal {

class buffer_pool {
public:
    // Maps buffer_count buffers of buffer_size bytes, each aligned to `alignment` (a power
    // of two up to 4096, which suits O_DIRECT). buffer_size is rounded up to the alignment.
    static result<buffer_pool> create(std::size_t buffer_size, std::size_t buffer_count,
                                      std::size_t alignment = 64) noexcept;

    buffer_pool(buffer_pool&& other) noexcept;
    buffer_pool& operator=(buffer_pool&& other) noexcept;
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;
    ~buffer_pool();

    // Hands out up to `count` buffers into out[]; returns how many (fewer when the pool
    // runs low, 0 when empty). The caller owns them until put_burst.
    std::size_t get_burst(std::byte** out, std::size_t count) noexcept;
    std::byte* get() noexcept {
        std::byte* b = nullptr;
        return get_burst(&b, 1) == 1 ? b : nullptr;
    }

    // Takes back `count` buffers. Each must have come from this pool and be out: a foreign
    // pointer or a double return aborts (always-on), since either would let two owners
    // write one buffer.
    void put_burst(std::byte* const* buffers, std::size_t count) noexcept;
    void put(std::byte* buffer) noexcept { put_burst(&buffer, 1); }

    std::size_t buffer_size() const noexcept { return _buffer_size; }
    std::size_t buffer_count() const noexcept { return _buffer_count; }
    std::size_t available_count() const noexcept { return _free_count; }

    // Index of a buffer of this pool, in [0, buffer_count), and back.
    std::uint32_t index_of(const std::byte* buffer) const noexcept;
    std::byte* at(std::uint32_t index) const noexcept;

private:
    buffer_pool() = default;
    void release() noexcept;

    std::byte* _base = nullptr;
    std::size_t _mapping_size = 0;
    std::size_t _buffer_size = 0;
    std::size_t _buffer_count = 0;
    std::size_t _free_count = 0;
    std::unique_ptr<std::uint32_t[]> _free_stack;  // indices of free buffers
    std::unique_ptr<std::uint64_t[]> _out_bits;    // one bit per buffer: handed out
};

}  // namespace shoal
