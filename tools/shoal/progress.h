// Progress of long commands: on a terminal one line redrawn (bytes done, rate, ETA); with
// --progress=json one JSON object per line for scripts; with --progress=none nothing.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"

namespace shoal::cli {

class progress_printer {
public:
    enum class mode { none, human, json };
    // "auto": human when stderr is a terminal, else none.
    static result<mode> parse_mode(std::string_view text);

    progress_printer(mode m, std::string phase);
    // Thread-safe; draws at most every 200 ms (and always the final state from finish()).
    void update(std::uint64_t done_bytes, std::uint64_t total_bytes);
    void finish(std::uint64_t done_bytes, std::uint64_t total_bytes);

private:
    void draw(std::uint64_t done, std::uint64_t total, bool final);
    mode _mode;
    std::string _phase;
    std::int64_t _start_ns;
    std::int64_t _last_draw_ns = 0;
    std::mutex _mu;
};

}  // namespace shoal::cli
