// A fixed-capacity single-producer single-consumer ring of trivially copyable items
// (buffer pointers, indices, small descriptors), after DPDK's rte_ring: burst calls that
// take an array and return how many items moved. Memory is allocated once, in the
// constructor; enqueue and dequeue never allocate and never block.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <type_traits>

#include "common/check.h"

namespace shoal {

template <class T>
class spsc_ring {
    static_assert(std::is_trivially_copyable_v<T>, "ring items are copied as bytes");

public:
    // capacity must be a power of two, at least 2. Allocates capacity slots.
    explicit spsc_ring(std::size_t capacity)
        : _slots(std::make_unique<T[]>(capacity)), _mask(capacity - 1) {
        SHOAL_ASSERT_MSG(capacity >= 2 && (capacity & (capacity - 1)) == 0,
                         "ring capacity {} is not a power of two", capacity);
    }

    spsc_ring(const spsc_ring&) = delete;
    spsc_ring& operator=(const spsc_ring&) = delete;

    std::size_t capacity() const noexcept { return _mask + 1; }

    // Producer side. Copies up to `count` items in; returns how many fit (0 when full).
    std::size_t enqueue_burst(const T* items, std::size_t count) noexcept {
        const std::size_t head = _head.load(std::memory_order_relaxed);
        std::size_t free_count = capacity() - (head - _tail_cache);
        if (free_count < count) {
            _tail_cache = _tail.load(std::memory_order_acquire);
            free_count = capacity() - (head - _tail_cache);
        }
        const std::size_t n = count < free_count ? count : free_count;
        for (std::size_t i = 0; i < n; ++i) {
            _slots[(head + i) & _mask] = items[i];
        }
        _head.store(head + n, std::memory_order_release);
        return n;
    }

    bool enqueue(const T& item) noexcept { return enqueue_burst(&item, 1) == 1; }

    // Consumer side. Copies up to `count` items out; returns how many (0 when empty).
    std::size_t dequeue_burst(T* items, std::size_t count) noexcept {
        const std::size_t tail = _tail.load(std::memory_order_relaxed);
        std::size_t used_count = _head_cache - tail;
        if (used_count < count) {
            _head_cache = _head.load(std::memory_order_acquire);
            used_count = _head_cache - tail;
        }
        const std::size_t n = count < used_count ? count : used_count;
        for (std::size_t i = 0; i < n; ++i) {
            items[i] = _slots[(tail + i) & _mask];
        }
        _tail.store(tail + n, std::memory_order_release);
        return n;
    }

    bool dequeue(T& item) noexcept { return dequeue_burst(&item, 1) == 1; }

    // Approximate when the other side is running; exact when it is not.
    std::size_t size() const noexcept {
        return _head.load(std::memory_order_acquire) - _tail.load(std::memory_order_acquire);
    }
    bool empty() const noexcept { return size() == 0; }

private:
    std::unique_ptr<T[]> _slots;
    std::size_t _mask;
    // Producer's line: its index and its last look at the consumer's.
    alignas(64) std::atomic<std::size_t> _head{0};
    std::size_t _tail_cache = 0;
    // Consumer's line.
    alignas(64) std::atomic<std::size_t> _tail{0};
    std::size_t _head_cache = 0;
};

}  // namespace shoal
