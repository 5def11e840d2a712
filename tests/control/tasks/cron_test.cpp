// The crontab(5) evaluator: parsing (fields, lists, ranges, steps, names, shorthands, errors
// that name the field) and next_run against dates worked out by hand.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include <unistd.h>

#include "tasks/cron.h"

namespace shoal::control::tasks {
namespace {

// 2026-01-05 00:00:00 UTC was a Monday.
constexpr std::int64_t monday_2026_01_05 = 1767571200;

std::int64_t utc(int y, int mo, int d, int h, int mi) {
    tm t{};
    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    return timegm(&t);
}

TEST(cron, fields_lists_ranges_steps) {
    auto e = parse_cron("*/15 6-18/4 1,15 * mon-fri");
    ASSERT_TRUE(e) << e.err().describe();
    EXPECT_EQ(e->minutes.count(), 4U);
    EXPECT_TRUE(e->minutes.test(0) && e->minutes.test(15) && e->minutes.test(30) &&
                e->minutes.test(45));
    EXPECT_EQ(e->hours.count(), 4U);  // 6 10 14 18
    EXPECT_TRUE(e->hours.test(6) && e->hours.test(10) && e->hours.test(14) && e->hours.test(18));
    EXPECT_EQ(e->days_of_month.count(), 2U);
    EXPECT_EQ(e->months.count(), 12U);
    EXPECT_EQ(e->days_of_week.count(), 5U);
    EXPECT_FALSE(e->days_of_week.test(0));
    EXPECT_FALSE(e->days_of_week.test(6));
    EXPECT_TRUE(e->days_of_month_star == false && e->days_of_week_star == false);
}

TEST(cron, names_sunday_seven_and_shorthands) {
    auto e = parse_cron("0 19 * JAN,jul Sun");
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->months.test(1) && e->months.test(7));
    EXPECT_EQ(e->months.count(), 2U);
    auto seven = parse_cron("0 19 * 1,7 7");
    ASSERT_TRUE(seven);
    EXPECT_EQ(*e, *seven);
    auto daily = parse_cron("@daily");
    auto midnight = parse_cron("  0 0 * * *\t");
    ASSERT_TRUE(daily && midnight);
    EXPECT_EQ(*daily, *midnight);
    auto step_from = parse_cron("5/20 * * * *");  // cronie's 5-59/20
    ASSERT_TRUE(step_from);
    EXPECT_EQ(step_from->minutes.count(), 3U);
    EXPECT_TRUE(step_from->minutes.test(5) && step_from->minutes.test(25) &&
                step_from->minutes.test(45));
}

TEST(cron, errors_name_the_field) {
    struct bad {
        const char* text;
        const char* says;
    };
    for (const bad& b : {
             bad{"", "has 0 fields"},
             bad{"* * * *", "has 4 fields"},
             bad{"* * * * * /bin/true", "more than five"},
             bad{"60 * * * *", "minute: 60 is past 59"},
             bad{"* 25 * * *", "hour: 25 is past 23"},
             bad{"* * 0 * *", "day of month: 0 is below 1"},
             bad{"* * * 13 *", "month: 13 is past 12"},
             bad{"* * * * 8", "day of week: 8 is past 7"},
             bad{"* * * foo *", "month: \"foo\" is not a number or a three-letter name"},
             bad{"x * * * *", "minute: \"x\" is not a number"},
             bad{"*/0 * * * *", "step \"0\""},
             bad{"*/ * * * *", "step \"\""},
             bad{"10-5 * * * *", "ends before it starts"},
             bad{"1,,2 * * * *", "empty item"},
             bad{"1- * * * *", "a value is missing"},
             bad{"@reboot", "@reboot has no meaning"},
             bad{"-1 * * * *", "a value is missing"},
         }) {
        auto e = parse_cron(b.text);
        ASSERT_FALSE(e) << b.text;
        EXPECT_NE(e.err().describe().find(b.says), std::string::npos)
            << b.text << " -> " << e.err().describe();
    }
    std::string long_text(cron_text_size_max + 1, '*');
    EXPECT_FALSE(parse_cron(long_text));
}

TEST(cron, next_run_by_hand) {
    auto weekdays_7pm = parse_cron("0 19 * * mon-fri");
    ASSERT_TRUE(weekdays_7pm);
    // Monday 00:00 -> Monday 19:00
    EXPECT_EQ(next_run(*weekdays_7pm, monday_2026_01_05), utc(2026, 1, 5, 19, 0));
    // Exactly at 19:00 -> strictly after: Tuesday
    EXPECT_EQ(next_run(*weekdays_7pm, utc(2026, 1, 5, 19, 0)), utc(2026, 1, 6, 19, 0));
    // Friday 19:30 -> next Monday
    EXPECT_EQ(next_run(*weekdays_7pm, utc(2026, 1, 9, 19, 30)), utc(2026, 1, 12, 19, 0));

    auto every_15 = parse_cron("*/15 * * * *");
    ASSERT_TRUE(every_15);
    EXPECT_EQ(next_run(*every_15, utc(2026, 1, 5, 10, 14) + 59), utc(2026, 1, 5, 10, 15));
    EXPECT_EQ(next_run(*every_15, utc(2026, 12, 31, 23, 50)), utc(2027, 1, 1, 0, 0));

    // Day of month OR day of week when both are restricted: the 13th, or any Friday.
    auto either = parse_cron("0 12 13 * fri");
    ASSERT_TRUE(either);
    EXPECT_EQ(next_run(*either, monday_2026_01_05), utc(2026, 1, 9, 12, 0));        // a Friday
    EXPECT_EQ(next_run(*either, utc(2026, 1, 9, 12, 0)), utc(2026, 1, 13, 12, 0));  // Tue 13th
    // Day of month AND * day of week: only the 13th.
    auto only_13th = parse_cron("0 12 13 * *");
    ASSERT_TRUE(only_13th);
    EXPECT_EQ(next_run(*only_13th, monday_2026_01_05), utc(2026, 1, 13, 12, 0));
    EXPECT_EQ(next_run(*only_13th, utc(2026, 1, 13, 12, 0)), utc(2026, 2, 13, 12, 0));

    // 29 February: the next leap year.
    auto leap = parse_cron("0 0 29 2 *");
    ASSERT_TRUE(leap);
    EXPECT_EQ(next_run(*leap, monday_2026_01_05), utc(2028, 2, 29, 0, 0));
    // 31 April never exists.
    auto never = parse_cron("0 0 31 4 *");
    ASSERT_TRUE(never);
    EXPECT_EQ(next_run(*never, monday_2026_01_05), std::nullopt);
}

TEST(cron, next_run_matches_a_brute_force_walk) {
    // Every minute for 20 days against a direct check of each field, for a few expressions.
    for (const char* text :
         {"*/7 3-5,22 * * *", "0 0 1,15 * 3", "30 */6 * jan-mar sat,sun", "59 23 31 * *"}) {
        auto e = parse_cron(text);
        ASSERT_TRUE(e) << text;
        std::int64_t t = monday_2026_01_05 - 60;
        for (int i = 0; i < 12; ++i) {
            auto n = next_run(*e, t);
            // brute force
            std::int64_t b = (t / 60 + 1) * 60;
            for (;; b += 60) {
                time_t bt = static_cast<time_t>(b);
                tm x{};
                gmtime_r(&bt, &x);
                bool dom = e->days_of_month.test(static_cast<std::size_t>(x.tm_mday));
                bool dow = e->days_of_week.test(static_cast<std::size_t>(x.tm_wday));
                bool day =
                    (!e->days_of_month_star && !e->days_of_week_star) ? (dom || dow) : (dom && dow);
                if (e->minutes.test(static_cast<std::size_t>(x.tm_min)) &&
                    e->hours.test(static_cast<std::size_t>(x.tm_hour)) &&
                    e->months.test(static_cast<std::size_t>(x.tm_mon + 1)) && day) {
                    break;
                }
                ASSERT_LT(b, monday_2026_01_05 + 1200LL * 86400) << text;
            }
            ASSERT_EQ(n, b) << text << " after " << t;
            t = *n;
        }
    }
}

TEST(cron, local_zone_skips_the_spring_forward_gap) {
    // Europe/Paris moves 02:00 -> 03:00 on 2026-03-29: "30 2 * * *" does not fire that day.
    if (access("/usr/share/zoneinfo/Europe/Paris", R_OK) != 0) {
        GTEST_SKIP() << "no tzdata";
    }
    setenv("TZ", "Europe/Paris", 1);
    tzset();
    auto e = parse_cron("30 2 * * *");
    ASSERT_TRUE(e);
    std::int64_t before = utc(2026, 3, 28, 12, 0);
    auto first = next_run(*e, before, cron_zone::local);
    ASSERT_TRUE(first);
    // 29th 02:30 does not exist; the 30th's 02:30 CEST is 00:30 UTC.
    EXPECT_EQ(*first, utc(2026, 3, 30, 0, 30));
    unsetenv("TZ");
    tzset();
}

}  // namespace
}  // namespace shoal::control::tasks
