// Two tiers of assertion.
//  - SHOAL_ASSERT: always on, in every build. For invariants whose failure would write bad
//    bytes to a disk or a store, or hand out a buffer twice. Prints where and why, aborts.
//  - SHOAL_DASSERT: debug builds only (compiled out under NDEBUG, still type-checked).
// Expected failures (bad packet, missing file, full disk) are never assertions: they are
// values, see common/result.h.
#pragma once

#include <string_view>

#include <fmt/format.h>

namespace shoal::detail {

[[noreturn]] void assert_fail(const char* condition, const char* file, int line,
                              std::string_view message) noexcept;

template <class... Args>
[[noreturn]] void assert_fail_fmt(const char* condition, const char* file, int line,
                                  fmt::format_string<Args...> fmt_string, Args&&... args) noexcept {
    char buffer[512];
    auto out = fmt::format_to_n(buffer, sizeof buffer, fmt_string, std::forward<Args>(args)...);
    assert_fail(condition, file, line,
                std::string_view(buffer, out.size < sizeof buffer ? out.size : sizeof buffer));
}

}  // namespace shoal::detail

#define SHOAL_ASSERT(cond)                                                     \
    ((cond) ? static_cast<void>(0)                                             \
            : ::shoal::detail::assert_fail(#cond, __FILE__, __LINE__, {}))

#define SHOAL_ASSERT_MSG(cond, ...)                                            \
    ((cond) ? static_cast<void>(0)                                             \
            : ::shoal::detail::assert_fail_fmt(#cond, __FILE__, __LINE__, __VA_ARGS__))

#ifdef NDEBUG
#define SHOAL_DASSERT(cond)                                                    \
    do {                                                                       \
        if (false) {                                                           \
            static_cast<void>(cond);                                           \
        }                                                                      \
    } while (0)
#else
#define SHOAL_DASSERT(cond) SHOAL_ASSERT(cond)
#endif
