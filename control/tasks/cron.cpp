#include "tasks/cron.h"

#include <time.h>

#include <array>
#include <cctype>
#include <charconv>
#include <vector>

namespace shoal::control::tasks {

namespace {

struct field_spec {
    const char* name;
    int low;
    int high;
    const char* const* names;  // names[i] is the value low + i's name, or nullptr
    int names_count;
};

constexpr const char* month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr field_spec fields[5] = {
    {"minute", 0, 59, nullptr, 0},
    {"hour", 0, 23, nullptr, 0},
    {"day of month", 1, 31, nullptr, 0},
    {"month", 1, 12, month_names, 12},
    // 7 is Sunday too; names map sun..sat to 0..6.
    {"day of week", 0, 7, day_names, 7},
};

std::string clip(std::string_view text) { return std::string(text.substr(0, 40)); }

// One value: a number or (for month and day of week) a three-letter name.
result<int> parse_value(std::string_view text, const field_spec& f) {
    if (text.empty()) {
        return error::format(errc::malformed, 0, "{}: a value is missing", f.name);
    }
    if (std::isalpha(static_cast<unsigned char>(text[0])) != 0) {
        if (f.names != nullptr && text.size() == 3) {
            std::string lower;
            for (char c : text) {
                lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            for (int i = 0; i < f.names_count; ++i) {
                if (lower == f.names[i]) {
                    return f.low + i;
                }
            }
        }
        return error::format(errc::malformed, 0, "{}: \"{}\" is not a {}", f.name, clip(text),
                             f.names != nullptr ? "number or a three-letter name" : "number");
    }
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return error::format(errc::malformed, 0, "{}: \"{}\" is not a number", f.name, clip(text));
    }
    if (value < f.low) {
        return error::format(errc::malformed, 0, "{}: {} is below {}", f.name, value, f.low);
    }
    if (value > f.high) {
        return error::format(errc::malformed, 0, "{}: {} is past {}", f.name, value, f.high);
    }
    return value;
}

// A field: comma-separated items, each `*`, `a`, `a-b`, with an optional `/step`. Sets
// bits[value - low] for every value it covers. `star` is whether the field starts with '*'.
status parse_field(std::string_view text, const field_spec& f, std::vector<bool>& bits,
                   bool& star) {
    bits.assign(static_cast<std::size_t>(f.high - f.low + 1), false);
    star = !text.empty() && text[0] == '*';
    if (text.empty()) {
        return error::format(errc::malformed, 0, "{}: empty", f.name);
    }
    std::size_t pos = 0;
    while (true) {
        std::size_t comma = text.find(',', pos);
        std::string_view item =
            text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
        if (item.empty()) {
            return error::format(errc::malformed, 0, "{}: an empty item in \"{}\"", f.name,
                                 clip(text));
        }
        int step = 1;
        std::size_t slash = item.find('/');
        std::string_view range = item.substr(0, slash);
        if (slash != std::string_view::npos) {
            std::string_view step_text = item.substr(slash + 1);
            auto [end, ec] =
                std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
            if (step_text.empty() || ec != std::errc{} ||
                end != step_text.data() + step_text.size() || step < 1 ||
                step > f.high - f.low + 1) {
                return error::format(errc::malformed, 0,
                                     "{}: step \"{}\" is not a number from 1 to {}", f.name,
                                     clip(step_text), f.high - f.low + 1);
            }
        }
        int first = 0;
        int last = 0;
        if (range == "*") {
            first = f.low;
            last = f.high;
        } else {
            std::size_t dash = range.find('-');
            auto a = parse_value(range.substr(0, dash), f);
            if (!a) {
                return a.err();
            }
            first = *a;
            if (dash != std::string_view::npos) {
                auto b = parse_value(range.substr(dash + 1), f);
                if (!b) {
                    return b.err();
                }
                last = *b;
                if (last < first) {
                    return error::format(errc::malformed, 0,
                                         "{}: range \"{}\" ends before it starts", f.name,
                                         clip(range));
                }
            } else {
                // "5/15" is cronie's "5-59/15"; a bare value is itself.
                last = slash != std::string_view::npos ? f.high : first;
            }
        }
        for (int v = first; v <= last; v += step) {
            bits[static_cast<std::size_t>(v - f.low)] = true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        pos = comma + 1;
    }
    return ok();
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

result<cron_expr> parse_cron(std::string_view text) {
    if (text.size() > cron_text_size_max) {
        return error::format(errc::malformed, 0, "cron expression of {} bytes (at most {})",
                             text.size(), cron_text_size_max);
    }
    while (!text.empty() && is_blank(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_blank(text.back())) {
        text.remove_suffix(1);
    }
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> shorthands{{
        {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"},
        {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"},
        {"@daily", "0 0 * * *"},
        {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    }};
    if (!text.empty() && text[0] == '@') {
        for (const auto& [name, expansion] : shorthands) {
            if (text == name) {
                return parse_cron(expansion);
            }
        }
        return error::format(errc::malformed, 0,
                             "\"{}\" is not a schedule shoal runs (@yearly, @monthly, @weekly, "
                             "@daily, @hourly; @reboot has no meaning for a task)",
                             clip(text));
    }
    std::array<std::string_view, 5> parts;
    std::size_t count = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        while (pos < text.size() && is_blank(text[pos])) {
            ++pos;
        }
        if (pos >= text.size()) {
            break;
        }
        std::size_t end = pos;
        while (end < text.size() && !is_blank(text[end])) {
            ++end;
        }
        if (count == parts.size()) {
            return error::format(errc::malformed, 0,
                                 "cron expression \"{}\" has more than five fields (minute hour "
                                 "day-of-month month day-of-week; shoal runs no command field)",
                                 clip(text));
        }
        parts[count++] = text.substr(pos, end - pos);
        pos = end;
    }
    if (count != parts.size()) {
        return error::format(errc::malformed, 0,
                             "cron expression \"{}\" has {} fields, needs five: minute hour "
                             "day-of-month month day-of-week",
                             clip(text), count);
    }
    cron_expr expr;
    std::vector<bool> bits;
    bool star = false;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        SHOAL_RETURN_IF_ERROR(parse_field(parts[i], fields[i], bits, star));
        for (std::size_t b = 0; b < bits.size(); ++b) {
            if (!bits[b]) {
                continue;
            }
            int v = fields[i].low + static_cast<int>(b);
            switch (i) {
            case 0: expr.minutes.set(static_cast<std::size_t>(v)); break;
            case 1: expr.hours.set(static_cast<std::size_t>(v)); break;
            case 2: expr.days_of_month.set(static_cast<std::size_t>(v)); break;
            case 3: expr.months.set(static_cast<std::size_t>(v)); break;
            default: expr.days_of_week.set(static_cast<std::size_t>(v % 7)); break;
            }
        }
        if (i == 2) {
            expr.days_of_month_star = star;
        } else if (i == 4) {
            expr.days_of_week_star = star;
        }
    }
    return expr;
}

namespace {

bool day_matches(const cron_expr& e, int day_of_month, int day_of_week) {
    bool dom = e.days_of_month.test(static_cast<std::size_t>(day_of_month));
    bool dow = e.days_of_week.test(static_cast<std::size_t>(day_of_week));
    if (!e.days_of_month_star && !e.days_of_week_star) {
        return dom || dow;
    }
    return dom && dow;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

int days_in_month(int year, int month) {
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

}  // namespace

std::optional<std::int64_t> next_run(const cron_expr& e, std::int64_t after_unix_s,
                                     cron_zone zone) {
    // Start at the minute after `after` (in the zone's calendar), then walk days, and in a
    // matching day its hours and minutes: at most ~3300 days, 24 hours, 60 minutes each.
    time_t t = static_cast<time_t>(after_unix_s);
    tm start{};
    if (zone == cron_zone::utc) {
        gmtime_r(&t, &start);
    } else {
        localtime_r(&t, &start);
    }
    int year = start.tm_year + 1900;
    int month = start.tm_mon + 1;
    int day = start.tm_mday;
    bool first_day = true;
    const int last_year = year + cron_search_years_max;
    while (year <= last_year) {
        if (!e.months.test(static_cast<std::size_t>(month))) {
            day = 1;
            first_day = false;
            if (++month > 12) {
                month = 1;
                ++year;
            }
            continue;
        }
        if (day > days_in_month(year, month)) {
            day = 1;
            first_day = false;
            if (++month > 12) {
                month = 1;
                ++year;
            }
            continue;
        }
        std::int64_t days =
            days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
        int dow = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
        if (day_matches(e, day, dow)) {
            for (int h = first_day ? start.tm_hour : 0; h < 24; ++h) {
                if (!e.hours.test(static_cast<std::size_t>(h))) {
                    continue;
                }
                for (int m = 0; m < 60; ++m) {
                    if (!e.minutes.test(static_cast<std::size_t>(m))) {
                        continue;
                    }
                    std::int64_t when = 0;
                    if (zone == cron_zone::utc) {
                        when = days * 86400 + h * 3600 + m * 60;
                    } else {
                        tm candidate{};
                        candidate.tm_year = year - 1900;
                        candidate.tm_mon = month - 1;
                        candidate.tm_mday = day;
                        candidate.tm_hour = h;
                        candidate.tm_min = m;
                        candidate.tm_isdst = -1;
                        time_t made = mktime(&candidate);
                        // A time in a spring-forward gap comes back moved; skip it.
                        if (made == static_cast<time_t>(-1) || candidate.tm_hour != h ||
                            candidate.tm_min != m) {
                            continue;
                        }
                        when = made;
                    }
                    if (when > after_unix_s) {
                        return when;
                    }
                }
            }
        }
        first_day = false;
        ++day;
    }
    return std::nullopt;
}

}  // namespace shoal::control::tasks
