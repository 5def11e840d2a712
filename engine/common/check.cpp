#include "common/check.h"

#include <cstdio>
#include <cstdlib>

namespace shoal::detail {

void assert_fail(const char* condition, const char* file, int line,
                 std::string_view message) noexcept {
    // Plain stdio: the logger may be what broke, and this must print whatever the state.
    std::fprintf(stderr, "shoal: invariant violated at %s:%d: %s%s%.*s\n", file, line, condition,
                 message.empty() ? "" : " — ", static_cast<int>(message.size()), message.data());
    std::fflush(stderr);
    std::abort();
}

}  // namespace shoal::detail
