// Logging with levels, on spdlog (stderr, one line per event). Engine code logs through
// these functions so that the sink and format are chosen in one place.
#pragma once

#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/result.h"

namespace shoal::log {

enum class level { trace, debug, info, warn, error, off };

// Parses "trace", "debug", "info", "warn", "error" or "off".
result<level> parse_level(std::string_view name) noexcept;

// Sets the threshold; events below it cost one comparison.
void set_level(level threshold) noexcept;

// Sets up the stderr logger once: the level from $SHOAL_LOG if set, else `fallback`.
void init(level fallback = level::info) noexcept;

template <class... Args>
void trace(spdlog::format_string_t<Args...> f, Args&&... args) { spdlog::trace(f, std::forward<Args>(args)...); }
template <class... Args>
void debug(spdlog::format_string_t<Args...> f, Args&&... args) { spdlog::debug(f, std::forward<Args>(args)...); }
template <class... Args>
void info(spdlog::format_string_t<Args...> f, Args&&... args) { spdlog::info(f, std::forward<Args>(args)...); }
template <class... Args>
void warn(spdlog::format_string_t<Args...> f, Args&&... args) { spdlog::warn(f, std::forward<Args>(args)...); }
template <class... Args>
void err(spdlog::format_string_t<Args...> f, Args&&... args) { spdlog::error(f, std::forward<Args>(args)...); }

}  // namespace shoal::log
