#include "common/pool.h"

#include <sys/mman.h>

#include <cerrno>
#include <new>
#include <utility>

namespace shoal {

result<buffer_pool> buffer_pool::create(std::size_t buffer_size, std::size_t buffer_count,
                                        std::size_t alignment) noexcept {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 4096) {
        return error::format(errc::invalid_argument, 0,
                             "buffer alignment {} is not a power of two up to 4096", alignment);
    }
    if (buffer_size == 0 || buffer_count == 0 || buffer_count > UINT32_MAX) {
        return error::format(errc::invalid_argument, 0,
                             "buffer pool of {} buffers of {} bytes is empty or too large",
                             buffer_count, buffer_size);
    }
    const std::size_t stride = (buffer_size + alignment - 1) & ~(alignment - 1);
    if (stride > SIZE_MAX / buffer_count) {
        return error(errc::invalid_argument, "buffer pool size overflows");
    }
    const std::size_t mapping_size = stride * buffer_count;
    // mmap gives page alignment, which covers every alignment allowed above.
    void* base = mmap(nullptr, mapping_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (base == MAP_FAILED) {
        return error::format(errc::no_space, errno, "cannot map {} bytes for a buffer pool",
                             mapping_size);
    }
    buffer_pool pool;
    pool._base = static_cast<std::byte*>(base);
    pool._mapping_size = mapping_size;
    pool._buffer_size = stride;
    pool._buffer_count = buffer_count;
    pool._free_count = buffer_count;
    pool._free_stack.reset(new (std::nothrow) std::uint32_t[buffer_count]);
    pool._out_bits.reset(new (std::nothrow) std::uint64_t[(buffer_count + 63) / 64]());
    if (!pool._free_stack || !pool._out_bits) {
        return error(errc::no_space, "cannot allocate buffer pool bookkeeping");
    }
    // Lowest index on top, so buffers are handed out in address order at first.
    for (std::size_t i = 0; i < buffer_count; ++i) {
        pool._free_stack[i] = static_cast<std::uint32_t>(buffer_count - 1 - i);
    }
    return pool;
}

buffer_pool::buffer_pool(buffer_pool&& other) noexcept { *this = std::move(other); }

buffer_pool& buffer_pool::operator=(buffer_pool&& other) noexcept {
    if (this != &other) {
        release();
        _base = std::exchange(other._base, nullptr);
        _mapping_size = std::exchange(other._mapping_size, 0);
        _buffer_size = std::exchange(other._buffer_size, 0);
        _buffer_count = std::exchange(other._buffer_count, 0);
        _free_count = std::exchange(other._free_count, 0);
        _free_stack = std::move(other._free_stack);
        _out_bits = std::move(other._out_bits);
    }
    return *this;
}

buffer_pool::~buffer_pool() { release(); }

void buffer_pool::release() noexcept {
    if (_base != nullptr) {
        munmap(_base, _mapping_size);
        _base = nullptr;
    }
}

std::size_t buffer_pool::get_burst(std::byte** out, std::size_t count) noexcept {
    const std::size_t n = count < _free_count ? count : _free_count;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t index = _free_stack[--_free_count];
        _out_bits[index / 64] |= std::uint64_t{1} << (index % 64);
        out[i] = _base + static_cast<std::size_t>(index) * _buffer_size;
    }
    return n;
}

void buffer_pool::put_burst(std::byte* const* buffers, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t index = index_of(buffers[i]);
        const std::uint64_t bit = std::uint64_t{1} << (index % 64);
        SHOAL_ASSERT_MSG((_out_bits[index / 64] & bit) != 0,
                         "buffer {} returned to its pool twice", index);
        _out_bits[index / 64] &= ~bit;
        _free_stack[_free_count++] = index;
    }
}

std::uint32_t buffer_pool::index_of(const std::byte* buffer) const noexcept {
    SHOAL_ASSERT_MSG(buffer >= _base && buffer < _base + _mapping_size,
                     "buffer {} does not belong to this pool", static_cast<const void*>(buffer));
    const auto offset = static_cast<std::size_t>(buffer - _base);
    SHOAL_ASSERT_MSG(offset % _buffer_size == 0, "pointer {} is inside a buffer, not at its start",
                     static_cast<const void*>(buffer));
    return static_cast<std::uint32_t>(offset / _buffer_size);
}

std::byte* buffer_pool::at(std::uint32_t index) const noexcept {
    SHOAL_ASSERT(index < _buffer_count);
    return _base + static_cast<std::size_t>(index) * _buffer_size;
}

}  // namespace shoal
