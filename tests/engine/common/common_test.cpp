#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc_counter.h"
#include "common/log.h"
#include "common/pool.h"
#include "common/result.h"
#include "common/ring.h"
#include "common/clock.h"

namespace shoal {
namespace {

result<int> parse_digit(char c) {
    if (c < '0' || c > '9') {
        return error::format(errc::malformed, 0, "'{}' is not a digit", c);
    }
    return c - '0';
}

status sum_digits(const char* s, int& total) {
    for (; *s != '\0'; ++s) {
        auto d = parse_digit(*s);
        SHOAL_RETURN_IF_ERROR(d);
        total += *d;
    }
    return ok();
}

TEST(result, carries_value_or_error) {
    auto good = parse_digit('7');
    ASSERT_TRUE(good);
    EXPECT_EQ(*good, 7);

    auto bad = parse_digit('x');
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.err().code(), errc::malformed);
    EXPECT_EQ(bad.err().context(), "'x' is not a digit");
}

TEST(result, return_if_error_propagates_the_first_failure) {
    int total = 0;
    EXPECT_TRUE(sum_digits("123", total));
    EXPECT_EQ(total, 6);
    total = 0;
    auto s = sum_digits("12z4", total);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().context(), "'z' is not a digit");
    EXPECT_EQ(total, 3);  // stopped at the bad digit
}

TEST(result, describe_adds_the_system_message) {
    error e = sys_error(-ENOENT, "open /nonexistent");
    EXPECT_EQ(e.code(), errc::io);
    EXPECT_EQ(e.sys_errno(), ENOENT);
    EXPECT_EQ(e.describe(), "open /nonexistent: No such file or directory");
    EXPECT_EQ(error(errc::timeout, "").describe(), "timed out");
}

TEST(result, long_context_is_cut_not_overflowed) {
    std::string long_text(1000, 'a');
    error e(errc::corrupt, long_text);
    EXPECT_EQ(e.context().size(), error::context_size_max);
    error f = error::format(errc::corrupt, 0, "{}{}", long_text, long_text);
    EXPECT_EQ(f.context().size(), error::context_size_max);
}

TEST(result, errors_do_not_allocate) {
    const std::size_t before = test::allocation_count();
    for (int i = 0; i < 1000; ++i) {
        auto r = parse_digit('q');
        ASSERT_FALSE(r);
    }
    EXPECT_EQ(test::allocation_count(), before);
}

TEST(result_death, value_of_failed_result_aborts) {
    EXPECT_DEATH(
        {
            auto r = parse_digit('x');
            (void)*r;
        },
        "value\\(\\) of a failed result: 'x' is not a digit");
}

TEST(assert_death, always_on_assert_reports_condition_and_message) {
    int buffers_out = 3;
    EXPECT_DEATH(SHOAL_ASSERT_MSG(buffers_out == 0, "{} buffers still out", buffers_out),
                 "invariant violated at .*common_test.cpp:[0-9]+: buffers_out == 0 — 3 buffers "
                 "still out");
}

TEST(log, parses_levels_and_rejects_unknown) {
    EXPECT_EQ(*log::parse_level("debug"), log::level::debug);
    EXPECT_EQ(*log::parse_level("off"), log::level::off);
    auto bad = log::parse_level("loud");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.err().describe().find("unknown log level 'loud'"), std::string::npos);
}

TEST(time, deadline_expires_and_counts_down) {
    const std::int64_t now = time::monotonic_ns();
    time::deadline d(now + 5 * time::ns_per_ms);
    EXPECT_FALSE(d.expired(now));
    EXPECT_EQ(d.remaining_ns(now), 5 * time::ns_per_ms);
    EXPECT_TRUE(d.expired(now + 5 * time::ns_per_ms));
    EXPECT_EQ(d.remaining_ns(now + 6 * time::ns_per_ms), 0);
    time::sleep_until_ns(d.at_ns());
    EXPECT_TRUE(d.expired());
    EXPECT_FALSE(time::deadline::never().expired());
}

TEST(ring, burst_fills_to_capacity_and_drains_in_order) {
    spsc_ring<std::uint32_t> ring(8);
    std::uint32_t in[10];
    for (std::uint32_t i = 0; i < 10; ++i) {
        in[i] = i;
    }
    EXPECT_EQ(ring.enqueue_burst(in, 10), 8u);  // only capacity fits
    EXPECT_EQ(ring.enqueue_burst(in, 1), 0u);
    std::uint32_t out[10] = {};
    EXPECT_EQ(ring.dequeue_burst(out, 3), 3u);
    EXPECT_EQ(out[0], 0u);
    EXPECT_EQ(out[2], 2u);
    EXPECT_EQ(ring.enqueue_burst(in + 8, 2), 2u);  // wraps around
    EXPECT_EQ(ring.dequeue_burst(out, 10), 7u);
    for (std::uint32_t i = 0; i < 7; ++i) {
        EXPECT_EQ(out[i], i + 3);
    }
    EXPECT_TRUE(ring.empty());
    EXPECT_EQ(ring.dequeue_burst(out, 1), 0u);
}

TEST(ring, two_threads_move_every_item_once_in_order) {
    constexpr std::uint64_t item_count = 2'000'000;
    spsc_ring<std::uint64_t> ring(1024);
    std::thread producer([&] {
        std::uint64_t next = 0;
        std::uint64_t batch[32];
        while (next < item_count) {
            std::size_t n = 0;
            for (; n < 32 && next + n < item_count; ++n) {
                batch[n] = next + n;
            }
            next += ring.enqueue_burst(batch, n);
        }
    });
    std::uint64_t expected = 0;
    std::uint64_t batch[32];
    bool in_order = true;
    while (expected < item_count) {
        const std::size_t n = ring.dequeue_burst(batch, 32);
        for (std::size_t i = 0; i < n; ++i) {
            in_order &= batch[i] == expected++;
        }
    }
    producer.join();
    EXPECT_TRUE(in_order);
    EXPECT_TRUE(ring.empty());
}

TEST(ring_death, capacity_must_be_power_of_two) {
    EXPECT_DEATH(spsc_ring<int> ring(12), "ring capacity 12 is not a power of two");
}

TEST(pool, hands_out_distinct_aligned_buffers_until_empty) {
    auto pool = buffer_pool::create(1500, 64, 4096);
    ASSERT_TRUE(pool) << pool.err().describe();
    EXPECT_EQ(pool->buffer_size(), 4096u);  // rounded up to the alignment
    std::byte* buffers[100];
    EXPECT_EQ(pool->get_burst(buffers, 100), 64u);
    EXPECT_EQ(pool->available_count(), 0u);
    EXPECT_EQ(pool->get(), nullptr);
    for (std::size_t i = 0; i < 64; ++i) {
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffers[i]) % 4096, 0u);
        EXPECT_EQ(pool->at(pool->index_of(buffers[i])), buffers[i]);
        std::memset(buffers[i], static_cast<int>(i), 4096);  // every byte is writable
    }
    pool->put_burst(buffers, 64);
    EXPECT_EQ(pool->available_count(), 64u);
}

TEST(pool, rejects_bad_geometry) {
    EXPECT_FALSE(buffer_pool::create(0, 10));
    EXPECT_FALSE(buffer_pool::create(10, 0));
    auto r = buffer_pool::create(10, 10, 48);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);
}

TEST(pool_death, double_return_aborts) {
    auto pool = buffer_pool::create(256, 4);
    ASSERT_TRUE(pool);
    std::byte* b = pool->get();
    pool->put(b);
    EXPECT_DEATH(pool->put(b), "returned to its pool twice");
}

TEST(pool_death, foreign_buffer_aborts) {
    auto pool = buffer_pool::create(256, 4);
    ASSERT_TRUE(pool);
    std::byte outside[256];
    EXPECT_DEATH(pool->put(outside), "does not belong to this pool");
}

// The promise of habit 1: after construction, rings and pools never allocate.
TEST(no_allocation, ring_and_pool_hot_paths) {
    auto pool = buffer_pool::create(2048, 256);
    ASSERT_TRUE(pool);
    spsc_ring<std::byte*> ring(256);
    std::byte* burst[32];
    const std::size_t before = test::allocation_count();
    for (int round = 0; round < 100'000; ++round) {
        const std::size_t got = pool->get_burst(burst, 32);
        const std::size_t queued = ring.enqueue_burst(burst, got);
        const std::size_t drained = ring.dequeue_burst(burst, queued);
        pool->put_burst(burst, drained);
    }
    EXPECT_EQ(test::allocation_count(), before);
    EXPECT_EQ(pool->available_count(), 256u);
}

TEST(no_allocation, the_counter_sees_allocations) {
    // The twin of the test above: proves the counter is live, so a zero means something.
    const std::size_t before = test::allocation_count();
    std::vector<int> v;
    v.resize(100 + before % 7);
    EXPECT_GE(v.size(), 100u);
    EXPECT_GE(test::allocation_count(), before + 1);
}

}  // namespace
}  // namespace shoal
