// The OpenAPI 3.0 description of /api/v1, built once from tables of the resources and
// their fields, so that it lists what api.cpp serves.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api.h"

namespace shoal::api {

namespace {

using json = nlohmann::json;

struct field {
    const char* name;
    json schema;
    bool read_only = false;
};

json str() { return {{"type", "string"}}; }
json integer() { return {{"type", "integer"}, {"format", "int64"}}; }
json boolean() { return {{"type", "boolean"}}; }
json time_() { return {{"type", "string"}, {"format", "date-time"}, {"nullable", true}}; }
json id_ref() { return {{"type", "integer"}, {"format", "int64"}, {"nullable", true}}; }
json ids() { return {{"type", "array"}, {"items", integer()}}; }
json one_of(std::vector<std::string> names) { return {{"type", "string"}, {"enum", names}}; }

struct resource {
    const char* path;    // "hosts"
    const char* schema;  // "Host"
    std::vector<field> fields;
    std::vector<const char*> required;  // on create
    bool patch = true;
    std::vector<std::pair<const char*, json>> filters;
};

std::vector<field> with_times(std::vector<field> f) {
    f.insert(f.begin(), {"id", integer(), true});
    f.push_back({"created_at", {{"type", "string"}, {"format", "date-time"}}, true});
    f.push_back({"updated_at", {{"type", "string"}, {"format", "date-time"}}, true});
    return f;
}

const std::vector<std::string> task_kinds = {"capture",     "deploy",    "multicast", "wipe_fast",
                                             "wipe_normal", "wipe_full", "disk_test", "inventory",
                                             "wol",         "debug"};
const std::vector<std::string> task_states = {"queued",   "active", "in_progress",
                                              "complete", "failed", "cancelled"};
const std::vector<std::string> session_states = {"waiting", "running", "complete", "failed",
                                                 "cancelled"};

std::vector<resource> resources() {
    json task_template = {{"type", "object"},
                          {"required", {"kind"}},
                          {"properties",
                           {{"kind", one_of(task_kinds)},
                            {"image_id", id_ref()},
                            {"shutdown", one_of({"none", "reboot", "poweroff"})},
                            {"wol", boolean()}}}};
    return {
        {"hosts",
         "Host",
         with_times({{"mac", {{"type", "string"}, {"example", "00:12:3F:C4:57:0C"}}},
                     {"name", {{"type", "string"}, {"pattern", "^[A-Za-z0-9._-]{1,63}$"}}},
                     {"description", str()},
                     {"image_id", id_ref()},
                     {"groups", ids()},
                     {"inventory", {{"type", "object"}}},
                     {"last_seen_at", time_(), true},
                     {"pending", boolean()}}),
         {"mac", "name"},
         true,
         {{"group_id", integer()}, {"image_id", integer()}, {"pending", boolean()}}},
        {"groups",
         "Group",
         with_times({{"name", str()}, {"description", str()}, {"hosts", ids()}}),
         {"name"},
         true,
         {}},
        {"images",
         "Image",
         with_times({{"name", str()},
                     {"kind", one_of({"single_disk_resizable", "multi_partition_single_disk",
                                      "multi_partition_all_disks", "raw"})},
                     {"description", str()},
                     {"size_bytes", integer()},
                     {"disks", {{"type", "array"}, {"items", {{"type", "object"}}}}},
                     {"storage_nodes", ids()},
                     {"protected", boolean()}}),
         {"name"},
         true,
         {}},
        {"storage-nodes",
         "StorageNode",
         with_times({{"name", str()},
                     {"url", str()},
                     {"path", str()},
                     {"storage_group_id", id_ref()},
                     {"master", boolean()},
                     {"enabled", boolean()}}),
         {"name", "url", "path"},
         true,
         {}},
        {"storage-groups",
         "StorageGroup",
         with_times({{"name", str()}, {"description", str()}}),
         {"name"},
         true,
         {}},
        {"tasks",
         "Task",
         with_times({{"kind", one_of(task_kinds)},
                     {"host_id", integer()},
                     {"image_id", id_ref()},
                     {"state", one_of(task_states), true},
                     {"progress",
                      {{"type", "object"},
                       {"properties",
                        {{"percent", {{"type", "number"}}},
                         {"bytes_done", integer()},
                         {"bytes_total", integer()},
                         {"rate_Bps", integer()},
                         {"message", str()}}}},
                      true},
                     {"session_id", id_ref(), true},
                     {"shutdown", one_of({"none", "reboot", "poweroff"})},
                     {"wol", boolean()},
                     {"disk", {{"type", "string"}, {"example", "serial:S4EVNX0N123456"}}},
                     {"created_by", id_ref(), true},
                     {"started_at", time_(), true},
                     {"finished_at", time_(), true}}),
         {"kind", "host_id"},
         true,
         {{"state", one_of(task_states)},
          {"kind", one_of(task_kinds)},
          {"host_id", integer()},
          {"session_id", integer()},
          {"open", boolean()}}},
        {"sessions",
         "Session",
         with_times({{"image_id", integer()},
                     {"state", one_of(session_states)},
                     {"group", {{"type", "string"}, {"example", "239.77.0.1"}}},
                     {"port", integer()},
                     {"receivers_min", integer()},
                     {"wait_max_s", integer()},
                     {"rate_bps", integer()},
                     {"tasks", ids(), true},
                     {"started_at", time_(), true},
                     {"finished_at", time_(), true}}),
         {"image_id", "group", "port"},
         true,
         {{"state", one_of(session_states)}, {"image_id", integer()}}},
        {"schedules",
         "Schedule",
         with_times({{"name", str()},
                     {"kind", one_of({"once", "cron"})},
                     {"at", time_()},
                     {"cron", {{"type", "string"}, {"example", "0 19 * * 1-5"}}},
                     {"task", task_template},
                     {"hosts", ids()},
                     {"groups", ids()},
                     {"enabled", boolean()},
                     {"next_run_at", time_(), true},
                     {"last_run_at", time_(), true}}),
         {"name", "kind", "task"},
         true,
         {}},
        {"users",
         "User",
         with_times({{"name", str()},
                     {"role", one_of({"admin", "operator", "viewer"})},
                     {"password", {{"type", "string"}, {"writeOnly", true}, {"minLength", 8}}}}),
         {"name", "password"},
         true,
         {}},
        {"tokens",
         "Token",
         {{"id", integer(), true},
          {"name", str()},
          {"user_id", integer()},
          {"expires_at", time_()},
          {"last_used_at", time_(), true},
          {"created_at", {{"type", "string"}, {"format", "date-time"}}, true},
          {"token", {{"type", "string"}, {"description", "the secret, shown once"}}, true}},
         {"name"},
         false,
         {{"user_id", integer()}}},
    };
}

json error_responses(std::initializer_list<const char*> codes) {
    json r = json::object();
    for (const char* c : codes) {
        r[c] = {{"$ref", std::string("#/components/responses/E") + c}};
    }
    return r;
}

json schema_ref(const std::string& schema) { return {{"$ref", "#/components/schemas/" + schema}}; }

json body_of(const json& schema, const char* type = "application/json") {
    return {{"required", true}, {"content", {{type, {{"schema", schema}}}}}};
}

json ok_json(const char* description, const json& schema) {
    return {{"description", description},
            {"content", {{"application/json", {{"schema", schema}}}}}};
}

json build() {
    json doc = {{"openapi", "3.0.3"},
                {"info",
                 {{"title", "shoal control plane API"},
                  {"version", "1"},
                  {"description",
                   "Hosts, groups, images, storage, tasks, multicast sessions, schedules, "
                   "users and tokens of a shoal server (docs/control.md)."}}},
                {"servers", {{{"url", "/api/v1"}}}},
                {"security", {{{"bearer", json::array()}}}}};
    json& comp = doc["components"];
    comp["securitySchemes"]["bearer"] = {{"type", "http"}, {"scheme", "bearer"}};
    comp["schemas"]["Error"] = {
        {"type", "object"},
        {"required", {"error"}},
        {"properties",
         {{"error", str()},
          {"field", {{"type", "string"}, {"description", "the input field at fault"}}},
          {"lines",
           {{"type", "array"},
            {"description", "CSV import: every bad line"},
            {"items",
             {{"type", "object"},
              {"properties", {{"line", integer()}, {"field", str()}, {"error", str()}}}}}}}}}};
    const std::pair<const char*, const char*> errors[] = {
        {"400", "invalid input; field names it"},
        {"401", "no token, or a wrong or expired one"},
        {"403", "not allowed for this user (viewers only read)"},
        {"404", "no such record"},
        {"409",
         "conflict: duplicate name or MAC, a host's second open task, a state change "
         "not allowed"},
        {"413", "request body too large"},
        {"501", "not supported by this server"},
        {"502", "the action failed (e.g. a wake)"},
    };
    for (const auto& [code, text] : errors) {
        comp["responses"][std::string("E") + code] = {
            {"description", text},
            {"content", {{"application/json", {{"schema", schema_ref("Error")}}}}}};
    }
    json& paths = doc["paths"];
    json list_params = {
        {{"name", "limit"},
         {"in", "query"},
         {"schema", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}}},
        {{"name", "offset"}, {"in", "query"}, {"schema", {{"type", "integer"}, {"minimum", 0}}}}};
    json id_param = {{"name", "id"}, {"in", "path"}, {"required", true}, {"schema", integer()}};
    for (const auto& r : resources()) {
        json props = json::object();
        for (const auto& f : r.fields) {
            json s = f.schema;
            if (f.read_only) {
                s["readOnly"] = true;
            }
            props[f.name] = s;
        }
        comp["schemas"][r.schema] = {{"type", "object"}, {"properties", props}};
        comp["schemas"][std::string(r.schema) + "Create"] = {
            {"allOf", {schema_ref(r.schema), {{"required", r.required}}}}};
        json list_schema = {{"type", "object"},
                            {"properties",
                             {{"items", {{"type", "array"}, {"items", schema_ref(r.schema)}}},
                              {"limit", integer()},
                              {"offset", integer()},
                              {"total", integer()}}}};
        json params = list_params;
        for (const auto& [name, schema] : r.filters) {
            params.push_back({{"name", name}, {"in", "query"}, {"schema", schema}});
        }
        std::string base = std::string("/") + r.path;
        paths[base]["get"] = {{"summary", std::string("list ") + r.path},
                              {"parameters", params},
                              {"responses", error_responses({"400", "401"})}};
        paths[base]["get"]["responses"]["200"] = ok_json("a page", list_schema);
        paths[base]["post"] = {
            {"summary", std::string("make one of ") + r.path},
            {"requestBody", body_of(schema_ref(std::string(r.schema) + "Create"))},
            {"responses", error_responses({"400", "401", "403", "409", "413"})}};
        paths[base]["post"]["responses"]["201"] = ok_json("made", schema_ref(r.schema));
        std::string one = base + "/{id}";
        paths[one]["parameters"] = {id_param};
        paths[one]["get"] = {{"responses", error_responses({"401", "404"})}};
        paths[one]["get"]["responses"]["200"] = ok_json("the record", schema_ref(r.schema));
        if (r.patch) {
            paths[one]["patch"] = {
                {"summary", "change the fields given"},
                {"requestBody", body_of(schema_ref(r.schema))},
                {"responses", error_responses({"400", "401", "403", "404", "409", "413"})}};
            paths[one]["patch"]["responses"]["200"] = ok_json("the record", schema_ref(r.schema));
        }
        paths[one]["delete"] = {{"responses", error_responses({"401", "403", "404", "409"})}};
        paths[one]["delete"]["responses"]["204"] = {{"description", "deleted"}};
    }
    // The actions.
    paths["/login"]["post"] = {
        {"security", json::array()},
        {"summary", "a token for a user name and password"},
        {"requestBody", body_of({{"type", "object"},
                                 {"required", {"user", "password"}},
                                 {"properties", {{"user", str()}, {"password", str()}}}})},
        {"responses", error_responses({"400", "401"})}};
    paths["/login"]["post"]["responses"]["200"] = ok_json(
        "logged in",
        {{"type", "object"},
         {"properties", {{"token", str()}, {"expires_at", str()}, {"user", schema_ref("User")}}}});
    paths["/hosts/import"]["post"] = {
        {"summary",
         "FOG's host CSV: \"MAC\",\"Hostname\",\"\",\"Description\",\"OS\",\"Image\" "
         "per line; all or nothing"},
        {"requestBody", body_of(str(), "text/csv")},
        {"responses", error_responses({"400", "401", "403", "409", "413"})}};
    paths["/hosts/import"]["post"]["responses"]["201"] =
        ok_json("imported", {{"type", "object"}, {"properties", {{"imported", integer()}}}});
    json mac_param = {{"name", "mac"}, {"in", "path"}, {"required", true}, {"schema", str()}};
    paths["/hosts/by-mac/{mac}"]["parameters"] = {mac_param};
    paths["/hosts/by-mac/{mac}"]["get"] = {{"responses", error_responses({"400", "401", "404"})}};
    paths["/hosts/by-mac/{mac}"]["get"]["responses"]["200"] =
        ok_json("the host", schema_ref("Host"));
    paths["/hosts/by-mac/{mac}"]["patch"] = {
        {"requestBody", body_of(schema_ref("Host"))},
        {"responses", error_responses({"400", "401", "403", "404", "409"})}};
    paths["/hosts/by-mac/{mac}"]["patch"]["responses"]["200"] =
        ok_json("the host", schema_ref("Host"));
    paths["/hosts/by-mac/{mac}"]["delete"] = {
        {"responses", error_responses({"401", "403", "404"})}};
    paths["/hosts/by-mac/{mac}"]["delete"]["responses"]["204"] = {{"description", "deleted"}};
    paths["/hosts/{id}/wake"]["parameters"] = {id_param};
    paths["/hosts/{id}/wake"]["post"] = {
        {"summary", "send a Wake-on-LAN magic packet"},
        {"responses", error_responses({"401", "403", "404", "501", "502"})}};
    paths["/hosts/{id}/wake"]["post"]["responses"]["202"] = {{"description", "sent"}};
    paths["/tasks/{id}/cancel"]["parameters"] = {id_param};
    paths["/tasks/{id}/cancel"]["post"] = {
        {"responses", error_responses({"401", "403", "404", "409"})}};
    paths["/tasks/{id}/cancel"]["post"]["responses"]["200"] =
        ok_json("cancelled", schema_ref("Task"));
    paths["/tasks/{id}/events"]["parameters"] = {id_param};
    paths["/tasks/{id}/events"]["get"] = {{"summary", "the task's history"},
                                          {"responses", error_responses({"401", "404"})}};
    paths["/tasks/{id}/events"]["get"]["responses"]["200"] = {{"description", "its events"}};
    paths["/groups/{id}/tasks"]["parameters"] = {id_param};
    paths["/groups/{id}/tasks"]["post"] = {
        {"summary", "a task for every host of the group (all or none)"},
        {"requestBody", body_of(resources()[7].fields[5].schema)},
        {"responses", error_responses({"400", "401", "403", "404", "409"})}};
    paths["/groups/{id}/tasks"]["post"]["responses"]["201"] = ok_json(
        "made", {{"type", "object"},
                 {"properties", {{"items", {{"type", "array"}, {"items", schema_ref("Task")}}}}}});
    paths["/openapi.json"]["get"] = {{"security", json::array()},
                                     {"responses", {{"200", {{"description", "this document"}}}}}};
    return doc;
}

}  // namespace

const nlohmann::json& openapi_document() {
    static const json doc = build();
    return doc;
}

}  // namespace shoal::api
