#include "tasks/planner.h"

#include <fmt/format.h>

#include <algorithm>

namespace shoal::control::tasks {

std::optional<std::int64_t> session_to_join(std::span<const waiting_session> waiting,
                                            std::int64_t image_id) {
    // The oldest waiting session of that image: there is normally one, and should two
    // exist (made by two shoalds' races, or by hand), filling the older one first starts it
    // soonest.
    std::optional<std::int64_t> best;
    std::int64_t best_created = 0;
    for (const auto& s : waiting) {
        if (s.image_id != image_id) {
            continue;
        }
        if (!best || s.created_at_s < best_created ||
            (s.created_at_s == best_created && s.id < *best)) {
            best = s.id;
            best_created = s.created_at_s;
        }
    }
    return best;
}

start_verdict should_start(const waiting_session& s, std::int64_t now_s) {
    if (s.tasks_count == 0) {
        return {start_decision::close_empty, "no task left in the session"};
    }
    std::uint32_t needed =
        s.receivers_min == 0 ? s.tasks_count : std::min(s.receivers_min, s.tasks_count);
    std::int64_t waited_s = now_s - s.created_at_s;
    if (s.joined_count >= needed) {
        if (waited_s < s.gather_s) {
            return {start_decision::wait,
                    fmt::format("{} of {} receivers joined; gathering tasks for {} s more",
                                s.joined_count, s.tasks_count, s.gather_s - waited_s)};
        }
        return {start_decision::start_joined, fmt::format("{} of {} receivers joined (start at {})",
                                                          s.joined_count, s.tasks_count, needed)};
    }
    if (waited_s >= s.wait_max_s) {
        if (s.joined_count == 0) {
            return {start_decision::wait,
                    fmt::format("waited {} s, no receiver has joined yet", waited_s)};
        }
        return {start_decision::start_timeout,
                fmt::format("waited {} s (at most {} s) with {} of {} receivers joined", waited_s,
                            s.wait_max_s, s.joined_count, s.tasks_count)};
    }
    return {start_decision::wait, fmt::format("{} of {} receivers joined, waiting for {}",
                                              s.joined_count, s.tasks_count, needed)};
}

std::string session_group(const multicast_plan& plan, std::int64_t session_id) {
    std::uint32_t slots = std::max<std::uint32_t>(plan.slots, 1);
    auto slot = static_cast<std::uint32_t>(static_cast<std::uint64_t>(session_id) % slots);
    std::uint32_t a = plan.group_base_host_order + slot;
    return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

}  // namespace shoal::control::tasks
