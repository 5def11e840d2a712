// Cron-style schedules: five fields as crontab(5) has them (minute hour day-of-month month
// day-of-week) with lists, ranges, steps and names, and the next time such an expression
// fires after a given time. No Debian library evaluates crontab expressions (cron itself
// does not export its parser), see docs/decisions.md.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace shoal::control::tasks {

// Longest expression accepted: a crontab line's five fields have no business being longer.
inline constexpr std::size_t cron_text_size_max = 256;
// How far ahead next_run looks before saying an expression never fires ("0 0 30 2 *"):
// nine years covers every 29 February, weekday combinations included.
inline constexpr int cron_search_years_max = 9;

struct cron_expr {
    std::bitset<60> minutes;
    std::bitset<24> hours;
    std::bitset<32> days_of_month;  // 1..31
    std::bitset<13> months;         // 1..12
    std::bitset<7> days_of_week;    // 0..6, Sunday 0 (7 is read as 0)
    // crontab(5): when both day fields are restricted (neither starts with '*'), a day
    // matches if EITHER matches; otherwise both must.
    bool days_of_month_star = true;
    bool days_of_week_star = true;

    bool operator==(const cron_expr&) const = default;
};

// Parses "*/15 6-18 * * mon-fri", "0 19 * * 1,3,5", "30 7 1 jan,jul *", and the shorthands
// @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly. Refuses @reboot and
// anything out of range with an error naming the field and the text: "hour: 25 is past 23".
result<cron_expr> parse_cron(std::string_view text);

// Which clock the fields are read in.
enum class cron_zone { utc, local };

// The first time (Unix seconds, on a minute boundary) strictly after `after_unix_s` at which
// the expression fires, or nullopt if it never does within cron_search_years_max years.
// In local time a minute that does not exist (a spring-forward gap) is skipped, as cron does.
std::optional<std::int64_t> next_run(const cron_expr& expr, std::int64_t after_unix_s,
                                     cron_zone zone = cron_zone::utc);

}  // namespace shoal::control::tasks
