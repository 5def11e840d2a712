#include "common/log.h"

#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace shoal::log {

result<level> parse_level(std::string_view name) noexcept {
    struct entry {
        std::string_view name;
        level value;
    };
    static constexpr entry table[] = {
        {"trace", level::trace}, {"debug", level::debug}, {"info", level::info},
        {"warn", level::warn},   {"error", level::error}, {"off", level::off},
    };
    for (const auto& e : table) {
        if (e.name == name) {
            return e.value;
        }
    }
    return error::format(errc::invalid_argument, 0,
                         "unknown log level '{}' (use trace, debug, info, warn, error or off)",
                         name);
}

static spdlog::level::level_enum to_spdlog(level l) noexcept {
    switch (l) {
    case level::trace: return spdlog::level::trace;
    case level::debug: return spdlog::level::debug;
    case level::info: return spdlog::level::info;
    case level::warn: return spdlog::level::warn;
    case level::error: return spdlog::level::err;
    case level::off: return spdlog::level::off;
    }
    return spdlog::level::info;
}

void set_level(level threshold) noexcept { spdlog::set_level(to_spdlog(threshold)); }

void init(level fallback) noexcept {
    static std::once_flag once;
    std::call_once(once, [] {
        auto logger = spdlog::stderr_color_mt("shoal");
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
        spdlog::set_default_logger(logger);
    });
    level chosen = fallback;
    if (const char* env = std::getenv("SHOAL_LOG"); env != nullptr) {
        if (auto parsed = parse_level(env)) {
            chosen = *parsed;
        } else {
            spdlog::warn("SHOAL_LOG: {}", parsed.err().describe());
        }
    }
    set_level(chosen);
}

}  // namespace shoal::log
