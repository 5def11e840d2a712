// The API's JSON for every record of control/store/model.h, both ways. Reading applies the
// fields present over a record (so one function serves create and PATCH), refuses unknown
// fields, skips the read-only ones (id, times the store sets) and names the field in every
// error: errc::invalid_argument with the context "<field>: <what is wrong>", which
// store::error_field() reads back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "store/model.h"
#include "store/repository.h"

namespace shoal::api {

using json = nlohmann::json;

// RFC 3339 UTC, "2026-11-24T01:38:00Z".
std::string format_time(std::int64_t unix_s);
// "2026-11-24T01:38:00Z", with an optional fraction and a Z or ±hh:mm offset.
result<std::int64_t> parse_time(std::string_view text, std::string_view field);

json to_json(const store::host& h);
json to_json(const store::host_group& g);
json to_json(const store::image& i);
json to_json(const store::storage_node& n);
json to_json(const store::storage_group& g);
json to_json(const store::task& t);
json to_json(const store::task_event& e);
json to_json(const store::session& s);
json to_json(const store::schedule& s);
json to_json(const store::user& u);
json to_json(const store::token& t);

// Each applies `body` (a JSON object) over `out`. `creating` makes the fields a new record
// needs required (e.g. a host's mac and name).
status from_json(const json& body, store::host& out, bool creating);
status from_json(const json& body, store::host_group& out, bool creating);
status from_json(const json& body, store::image& out, bool creating);
status from_json(const json& body, store::storage_node& out, bool creating);
status from_json(const json& body, store::storage_group& out, bool creating);
// A task as a client asks for one: kind, host_id, image_id, shutdown, wol.
status from_json(const json& body, store::task& out, bool creating);
status from_json(const json& body, store::session& out, bool creating);
status from_json(const json& body, store::schedule& out, bool creating);
// name and role (the password is read by the caller: it is not part of the record).
status from_json(const json& body, store::user& out, bool creating);
// The task template a group's POST .../tasks and a schedule share: kind, image_id,
// shutdown, wol.
status task_template_from_json(const json& body, store::task_template& out,
                               std::string_view prefix);
status progress_from_json(const json& body, store::task_progress& out);

// Reads one optional string field ("" when absent); errors name it.
result<std::string> string_field(const json& body, const char* key, bool required,
                                 std::size_t size_max = 1024);

}  // namespace shoal::api
