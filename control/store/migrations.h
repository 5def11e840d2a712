// The schema's numbered migrations, embedded in the binary from control/store/migrations
// (internal to control/store).
#pragma once

#include <string_view>
#include <vector>

namespace shoal::store {

struct migration {
    int version;            // 1, 2, 3... without gaps
    std::string_view name;  // the file's name, e.g. 0001_init.sql
    std::string_view sql;   // common SQL; {{id}} is the dialect's auto-assigned key
};

// Every migration, in order.
const std::vector<migration>& migrations();

}  // namespace shoal::store
