#include "common/clock.h"

#include <cerrno>

namespace shoal::time {

void sleep_until_ns(std::int64_t when_ns) noexcept {
    timespec ts{};
    ts.tv_sec = when_ns / ns_per_s;
    ts.tv_nsec = when_ns % ns_per_s;
    // Restart after a signal; the absolute deadline keeps the total wait exact.
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

}  // namespace shoal::time
