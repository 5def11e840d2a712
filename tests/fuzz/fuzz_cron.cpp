// The crontab expression parser on hostile text (schedules come from the REST API):
//  - nothing is read outside the input;
//  - an accepted expression sets only in-range bits and at least one in every field;
//  - next_run of an accepted expression returns a minute boundary strictly after its
//    argument, at which every field matches (checked with gmtime), or nothing.
#include <time.h>

#include <string>

#include "fuzz_support.h"
#include "tasks/cron.h"

using namespace shoal::control::tasks;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto e = parse_cron(text);
    if (!e) {
        FUZZ_CHECK(!e.err().describe().empty());
        return 0;
    }
    FUZZ_CHECK(e->minutes.any() && e->hours.any() && e->months.any());
    FUZZ_CHECK(e->days_of_month.any() || e->days_of_week.any());
    FUZZ_CHECK(!e->days_of_month.test(0) && !e->months.test(0));
    const std::int64_t after = 1767571200 + static_cast<std::int64_t>(size) * 7919;
    auto n = next_run(*e, after);
    if (n) {
        FUZZ_CHECK(*n > after && *n % 60 == 0);
        time_t t = static_cast<time_t>(*n);
        tm x{};
        gmtime_r(&t, &x);
        FUZZ_CHECK(e->minutes.test(static_cast<std::size_t>(x.tm_min)));
        FUZZ_CHECK(e->hours.test(static_cast<std::size_t>(x.tm_hour)));
        FUZZ_CHECK(e->months.test(static_cast<std::size_t>(x.tm_mon + 1)));
        bool dom = e->days_of_month.test(static_cast<std::size_t>(x.tm_mday));
        bool dow = e->days_of_week.test(static_cast<std::size_t>(x.tm_wday));
        FUZZ_CHECK((!e->days_of_month_star && !e->days_of_week_star) ? (dom || dow) : (dom && dow));
    }
    return 0;
}
