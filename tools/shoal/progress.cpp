#include "progress.h"

#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {
constexpr std::int64_t redraw_interval_ns = 200'000'000;
}

result<progress_printer::mode> progress_printer::parse_mode(std::string_view text) {
    if (text == "auto") {
        return isatty(STDERR_FILENO) != 0 ? mode::human : mode::none;
    }
    if (text == "human") {
        return mode::human;
    }
    if (text == "json") {
        return mode::json;
    }
    if (text == "none") {
        return mode::none;
    }
    return error::format(errc::invalid_argument, 0,
                         "--progress {:?}: use auto, human, json or none", text);
}

progress_printer::progress_printer(mode m, std::string phase)
    : _mode(m), _phase(std::move(phase)), _start_ns(time::monotonic_ns()) {}

void progress_printer::update(std::uint64_t done_bytes, std::uint64_t total_bytes) {
    std::lock_guard lock(_mu);
    const std::int64_t now = time::monotonic_ns();
    if (now - _last_draw_ns < redraw_interval_ns) {
        return;
    }
    _last_draw_ns = now;
    draw(done_bytes, total_bytes, false);
}

void progress_printer::finish(std::uint64_t done_bytes, std::uint64_t total_bytes) {
    std::lock_guard lock(_mu);
    draw(done_bytes, total_bytes, true);
}

void progress_printer::draw(std::uint64_t done, std::uint64_t total, bool final) {
    if (_mode == mode::none) {
        return;
    }
    const double elapsed_s = static_cast<double>(time::monotonic_ns() - _start_ns) / 1e9;
    const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
    const double eta_s = rate > 0 && total > done ? static_cast<double>(total - done) / rate : 0;
    if (_mode == mode::json) {
        nlohmann::json j = {{"phase", _phase},
                            {"done_bytes", done},
                            {"total_bytes", total},
                            {"rate_Bps", static_cast<std::uint64_t>(rate)},
                            {"eta_s", static_cast<std::uint64_t>(eta_s)},
                            {"elapsed_s", elapsed_s},
                            {"final", final}};
        std::fprintf(stdout, "%s\n", j.dump().c_str());
        std::fflush(stdout);
        return;
    }
    const double pct =
        total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
    const auto eta = static_cast<std::uint64_t>(eta_s);
    std::fprintf(stderr, "\r%s: %s / %s (%.0f%%)  %s  ETA %llu:%02llu   %s", _phase.c_str(),
                 human_bytes(static_cast<double>(done)).c_str(),
                 human_bytes(static_cast<double>(total)).c_str(), pct, human_rate(rate).c_str(),
                 static_cast<unsigned long long>(eta / 60),
                 static_cast<unsigned long long>(eta % 60), final ? "\n" : "");
    std::fflush(stderr);
}

}  // namespace shoal::cli
