// Monotonic time in integer nanoseconds. Never wall-clock time for durations or timeouts.
#pragma once

#include <cstdint>
#include <ctime>

namespace shoal::time {

inline constexpr std::int64_t ns_per_us = 1'000;
inline constexpr std::int64_t ns_per_ms = 1'000'000;
inline constexpr std::int64_t ns_per_s = 1'000'000'000;

inline std::int64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * ns_per_s + ts.tv_nsec;
}

// Sleeps until an absolute CLOCK_MONOTONIC time; returns at once if it has passed.
void sleep_until_ns(std::int64_t when_ns) noexcept;

inline void sleep_for_ns(std::int64_t duration_ns) noexcept {
    sleep_until_ns(monotonic_ns() + duration_ns);
}

// A point in monotonic time after which a wait gives up.
class deadline {
public:
    static deadline after_ns(std::int64_t duration_ns) noexcept {
        return deadline(monotonic_ns() + duration_ns);
    }
    static deadline after_ms(std::int64_t duration_ms) noexcept {
        return after_ns(duration_ms * ns_per_ms);
    }
    static deadline never() noexcept { return deadline(INT64_MAX); }

    explicit deadline(std::int64_t at_ns) noexcept : _at_ns(at_ns) {}

    std::int64_t at_ns() const noexcept { return _at_ns; }
    bool expired(std::int64_t now_ns) const noexcept { return now_ns >= _at_ns; }
    bool expired() const noexcept { return expired(monotonic_ns()); }
    // Nanoseconds left, 0 once expired.
    std::int64_t remaining_ns(std::int64_t now_ns) const noexcept {
        return now_ns >= _at_ns ? 0 : _at_ns - now_ns;
    }

private:
    std::int64_t _at_ns;
};

}  // namespace shoal::time
