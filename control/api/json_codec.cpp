#include "api/json_codec.h"

#include <ctime>
#include <initializer_list>
#include <limits>

#include <fmt/format.h>

namespace shoal::api {

namespace {

using store::record_id;

error bad(std::string_view field, std::string_view what) {
    return error::format(errc::invalid_argument, 0, "{}: {}", field, what);
}

// The keys a body may hold: `writable` are read, `read_only` skipped (a client may send a
// record back as it got it), anything else is an error naming the key.
status only_keys(const json& body, std::initializer_list<std::string_view> writable,
                 std::initializer_list<std::string_view> read_only) {
    if (!body.is_object()) {
        return bad("body", "must be a JSON object");
    }
    for (const auto& [key, value] : body.items()) {
        bool known = false;
        for (auto k : writable) {
            known = known || k == key;
        }
        for (auto k : read_only) {
            known = known || k == key;
        }
        if (!known) {
            std::string name = key.substr(0, 40);
            return error::format(errc::invalid_argument, 0, "{}: is not a field here (fields: {})",
                                 name, fmt::join(writable, ", "));
        }
    }
    return ok();
}

status need(const json& body, bool creating, std::initializer_list<const char*> keys) {
    if (!creating) {
        return ok();
    }
    for (const char* k : keys) {
        if (!body.contains(k)) {
            return bad(k, "is required");
        }
    }
    return ok();
}

status read_string(const json& body, const char* key, std::string& out,
                   std::size_t size_max = 1024) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (!it->is_string()) {
        return bad(key, "must be a string");
    }
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > size_max) {
        return error::format(errc::invalid_argument, 0, "{}: is longer than {} bytes", key,
                             size_max);
    }
    out = s;
    return ok();
}

status read_bool(const json& body, const char* key, bool& out) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (!it->is_boolean()) {
        return bad(key, "must be true or false");
    }
    out = it->get<bool>();
    return ok();
}

template <class T>
status read_int(const json& body, const char* key, T& out, std::int64_t min, std::int64_t max) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (!it->is_number_integer()) {
        return bad(key, "must be a whole number");
    }
    if (it->is_number_unsigned() &&
        it->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return error::format(errc::invalid_argument, 0, "{}: must be from {} to {}", key, min, max);
    }
    std::int64_t v = it->get<std::int64_t>();
    if (v < min || v > max) {
        return error::format(errc::invalid_argument, 0, "{}: must be from {} to {}", key, min, max);
    }
    out = static_cast<T>(v);
    return ok();
}

status read_id(const json& body, const char* key, record_id& out) {
    return read_int(body, key, out, 1, std::numeric_limits<std::int64_t>::max());
}

// null clears it.
status read_opt_id(const json& body, const char* key, std::optional<record_id>& out) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (it->is_null()) {
        out.reset();
        return ok();
    }
    record_id v = 0;
    SHOAL_RETURN_IF_ERROR(read_id(body, key, v));
    out = v;
    return ok();
}

status read_ids(const json& body, const char* key, std::vector<record_id>& out) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    constexpr std::size_t ids_max = 10000;
    if (!it->is_array() || it->size() > ids_max) {
        return error::format(errc::invalid_argument, 0, "{}: must be a list of at most {} ids", key,
                             ids_max);
    }
    std::vector<record_id> ids;
    for (const auto& v : *it) {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1) {
            return bad(key, "must be a list of ids (whole numbers from 1)");
        }
        ids.push_back(v.get<std::int64_t>());
    }
    out = std::move(ids);
    return ok();
}

status read_opt_time(const json& body, const char* key, std::optional<std::int64_t>& out) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (it->is_null()) {
        out.reset();
        return ok();
    }
    if (!it->is_string()) {
        return bad(key, "must be a time as RFC 3339 text, e.g. 2026-11-24T19:00:00Z");
    }
    auto t = parse_time(it->get_ref<const std::string&>(), key);
    if (!t) {
        return t.err();
    }
    out = *t;
    return ok();
}

// A JSON document kept as text (inventory, disks).
status read_json_text(const json& body, const char* key, std::string& out, bool object) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (object ? !it->is_object() : !it->is_array()) {
        return bad(key, object ? "must be a JSON object" : "must be a JSON array");
    }
    out = it->dump();
    return ok();
}

template <class E>
status read_enum(const json& body, const char* key, E& out,
                 result<E> (*parse)(std::string_view, std::string_view)) {
    auto it = body.find(key);
    if (it == body.end()) {
        return ok();
    }
    if (!it->is_string()) {
        return bad(key, "must be a string");
    }
    auto v = parse(it->get_ref<const std::string&>(), key);
    if (!v) {
        return v.err();
    }
    out = *v;
    return ok();
}

json opt_time(const std::optional<std::int64_t>& t) {
    return t ? json(format_time(*t)) : json(nullptr);
}

json opt_id(const std::optional<record_id>& id) { return id ? json(*id) : json(nullptr); }

json parse_text(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j;
}

}  // namespace

std::string format_time(std::int64_t unix_s) {
    std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char out[32];
    std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

result<std::int64_t> parse_time(std::string_view text, std::string_view field) {
    auto fail = [&] {
        return error::format(errc::invalid_argument, 0,
                             "{}: '{:.40}' is not an RFC 3339 time such as 2026-11-24T19:00:00Z",
                             field, text);
    };
    auto digits = [&](std::size_t at, std::size_t n, int& out) {
        if (at + n > text.size()) {
            return false;
        }
        out = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (text[i] < '0' || text[i] > '9') {
                return false;
            }
            out = out * 10 + (text[i] - '0');
        }
        return true;
    };
    int year, month, day, hour, minute, second;
    if (text.size() < 20 || !digits(0, 4, year) || text[4] != '-' || !digits(5, 2, month) ||
        text[7] != '-' || !digits(8, 2, day) ||
        (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !digits(11, 2, hour) ||
        text[13] != ':' || !digits(14, 2, minute) || text[16] != ':' || !digits(17, 2, second)) {
        return fail();
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 ||
        year < 1970) {
        return fail();
    }
    std::size_t at = 19;
    if (at < text.size() && text[at] == '.') {
        ++at;
        std::size_t start = at;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
            ++at;
        }
        if (at == start) {
            return fail();
        }
    }
    std::int64_t offset_s = 0;
    std::string_view zone = text.substr(at);
    if (zone == "Z" || zone == "z") {
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        int oh, om;
        if (!digits(at + 1, 2, oh) || !digits(at + 4, 2, om) || oh > 23 || om > 59) {
            return fail();
        }
        offset_s = (oh * 3600 + om * 60) * (zone[0] == '+' ? 1 : -1);
    } else {
        return fail();
    }
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    std::time_t t = ::timegm(&tm);
    // timegm normalizes 31 February into March: a date that moved was not a date.
    std::tm back{};
    ::gmtime_r(&t, &back);
    if (back.tm_mday != day && second != 60) {
        return fail();
    }
    return static_cast<std::int64_t>(t) - offset_s;
}

result<std::string> string_field(const json& body, const char* key, bool required,
                                 std::size_t size_max) {
    if (!body.is_object()) {
        return bad("body", "must be a JSON object");
    }
    if (required && !body.contains(key)) {
        return bad(key, "is required");
    }
    std::string out;
    SHOAL_RETURN_IF_ERROR(read_string(body, key, out, size_max));
    return out;
}

// ---- records to JSON ----

json to_json(const store::host& h) {
    return {{"id", h.id},
            {"mac", h.mac},
            {"name", h.name},
            {"description", h.description},
            {"image_id", opt_id(h.image_id)},
            {"groups", h.groups},
            {"inventory", parse_text(h.inventory)},
            {"last_seen_at", opt_time(h.last_seen_at)},
            {"pending", h.pending},
            {"created_at", format_time(h.created_at)},
            {"updated_at", format_time(h.updated_at)}};
}

json to_json(const store::host_group& g) {
    return {{"id", g.id},
            {"name", g.name},
            {"description", g.description},
            {"hosts", g.hosts},
            {"created_at", format_time(g.created_at)},
            {"updated_at", format_time(g.updated_at)}};
}

json to_json(const store::image& i) {
    return {{"id", i.id},
            {"name", i.name},
            {"kind", store::to_string(i.kind)},
            {"description", i.description},
            {"size_bytes", i.size_bytes},
            {"disks", parse_text(i.disks)},
            {"storage_nodes", i.storage_nodes},
            {"protected", i.is_protected},
            {"created_at", format_time(i.created_at)},
            {"updated_at", format_time(i.updated_at)}};
}

json to_json(const store::storage_node& n) {
    return {{"id", n.id},
            {"name", n.name},
            {"url", n.url},
            {"path", n.path},
            {"storage_group_id", opt_id(n.storage_group_id)},
            {"master", n.master},
            {"enabled", n.enabled},
            {"created_at", format_time(n.created_at)},
            {"updated_at", format_time(n.updated_at)}};
}

json to_json(const store::storage_group& g) {
    return {{"id", g.id},
            {"name", g.name},
            {"description", g.description},
            {"created_at", format_time(g.created_at)},
            {"updated_at", format_time(g.updated_at)}};
}

json to_json(const store::task& t) {
    return {{"id", t.id},
            {"kind", store::to_string(t.kind)},
            {"host_id", t.host_id},
            {"image_id", opt_id(t.image_id)},
            {"state", store::to_string(t.state)},
            {"progress",
             {{"percent", t.progress.percent},
              {"bytes_done", t.progress.bytes_done},
              {"bytes_total", t.progress.bytes_total},
              {"rate_Bps", t.progress.rate_Bps},
              {"message", t.progress.message}}},
            {"session_id", opt_id(t.session_id)},
            {"shutdown", store::to_string(t.shutdown)},
            {"wol", t.wol},
            {"disk", t.disk},
            {"created_by", opt_id(t.created_by)},
            {"started_at", opt_time(t.started_at)},
            {"finished_at", opt_time(t.finished_at)},
            {"created_at", format_time(t.created_at)},
            {"updated_at", format_time(t.updated_at)}};
}

json to_json(const store::task_event& e) {
    return {{"at", format_time(e.at)},
            {"from", e.from ? json(store::to_string(*e.from)) : json(nullptr)},
            {"to", store::to_string(e.to)},
            {"message", e.message}};
}

json to_json(const store::session& s) {
    return {{"id", s.id},
            {"image_id", s.image_id},
            {"state", store::to_string(s.state)},
            {"group", s.group},
            {"port", s.port},
            {"receivers_min", s.receivers_min},
            {"wait_max_s", s.wait_max_s},
            {"rate_bps", s.rate_bps},
            {"tasks", s.tasks},
            {"started_at", opt_time(s.started_at)},
            {"finished_at", opt_time(s.finished_at)},
            {"created_at", format_time(s.created_at)},
            {"updated_at", format_time(s.updated_at)}};
}

json to_json(const store::schedule& s) {
    return {{"id", s.id},
            {"name", s.name},
            {"kind", store::to_string(s.kind)},
            {"at", opt_time(s.at)},
            {"cron", s.cron},
            {"task",
             {{"kind", store::to_string(s.task.kind)},
              {"image_id", opt_id(s.task.image_id)},
              {"shutdown", store::to_string(s.task.shutdown)},
              {"wol", s.task.wol}}},
            {"hosts", s.hosts},
            {"groups", s.groups},
            {"enabled", s.enabled},
            {"next_run_at", opt_time(s.next_run_at)},
            {"last_run_at", opt_time(s.last_run_at)},
            {"created_at", format_time(s.created_at)},
            {"updated_at", format_time(s.updated_at)}};
}

json to_json(const store::user& u) {
    return {{"id", u.id},
            {"name", u.name},
            {"role", store::to_string(u.role)},
            {"created_at", format_time(u.created_at)},
            {"updated_at", format_time(u.updated_at)}};
}

json to_json(const store::token& t) {
    return {{"id", t.id},
            {"name", t.name},
            {"user_id", t.user_id},
            {"expires_at", opt_time(t.expires_at)},
            {"last_used_at", opt_time(t.last_used_at)},
            {"created_at", format_time(t.created_at)}};
}

// ---- JSON to records ----

status from_json(const json& b, store::host& h, bool creating) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(b, {"mac", "name", "description", "image_id", "groups", "inventory", "pending"},
                  {"id", "last_seen_at", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"mac", "name"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "mac", h.mac, 64));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", h.name, 256));
    SHOAL_RETURN_IF_ERROR(read_string(b, "description", h.description));
    SHOAL_RETURN_IF_ERROR(read_opt_id(b, "image_id", h.image_id));
    SHOAL_RETURN_IF_ERROR(read_ids(b, "groups", h.groups));
    SHOAL_RETURN_IF_ERROR(read_json_text(b, "inventory", h.inventory, true));
    SHOAL_RETURN_IF_ERROR(read_bool(b, "pending", h.pending));
    return ok();
}

status from_json(const json& b, store::host_group& g, bool creating) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(b, {"name", "description", "hosts"}, {"id", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"name"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", g.name, 256));
    SHOAL_RETURN_IF_ERROR(read_string(b, "description", g.description));
    SHOAL_RETURN_IF_ERROR(read_ids(b, "hosts", g.hosts));
    return ok();
}

status from_json(const json& b, store::image& i, bool creating) {
    SHOAL_RETURN_IF_ERROR(only_keys(
        b, {"name", "kind", "description", "size_bytes", "disks", "storage_nodes", "protected"},
        {"id", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"name"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", i.name, 256));
    SHOAL_RETURN_IF_ERROR(read_enum(b, "kind", i.kind, &store::image_kind_from_string));
    SHOAL_RETURN_IF_ERROR(read_string(b, "description", i.description));
    SHOAL_RETURN_IF_ERROR(
        read_int(b, "size_bytes", i.size_bytes, 0, std::numeric_limits<std::int64_t>::max()));
    SHOAL_RETURN_IF_ERROR(read_json_text(b, "disks", i.disks, false));
    SHOAL_RETURN_IF_ERROR(read_ids(b, "storage_nodes", i.storage_nodes));
    SHOAL_RETURN_IF_ERROR(read_bool(b, "protected", i.is_protected));
    return ok();
}

status from_json(const json& b, store::storage_node& n, bool creating) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(b, {"name", "url", "path", "storage_group_id", "master", "enabled"},
                  {"id", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"name", "url", "path"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", n.name, 256));
    SHOAL_RETURN_IF_ERROR(read_string(b, "url", n.url));
    SHOAL_RETURN_IF_ERROR(read_string(b, "path", n.path));
    SHOAL_RETURN_IF_ERROR(read_opt_id(b, "storage_group_id", n.storage_group_id));
    SHOAL_RETURN_IF_ERROR(read_bool(b, "master", n.master));
    SHOAL_RETURN_IF_ERROR(read_bool(b, "enabled", n.enabled));
    return ok();
}

status from_json(const json& b, store::storage_group& g, bool creating) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(b, {"name", "description"}, {"id", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"name"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", g.name, 256));
    SHOAL_RETURN_IF_ERROR(read_string(b, "description", g.description));
    return ok();
}

status from_json(const json& b, store::task& t, bool creating) {
    if (creating) {
        SHOAL_RETURN_IF_ERROR(
            only_keys(b, {"kind", "host_id", "image_id", "shutdown", "wol", "disk"},
                      {"id", "created_at", "updated_at"}));
        SHOAL_RETURN_IF_ERROR(need(b, creating, {"kind", "host_id"}));
        SHOAL_RETURN_IF_ERROR(read_string(b, "disk", t.disk, 128));
        SHOAL_RETURN_IF_ERROR(read_enum(b, "kind", t.kind, &store::task_kind_from_string));
        SHOAL_RETURN_IF_ERROR(read_id(b, "host_id", t.host_id));
        SHOAL_RETURN_IF_ERROR(read_opt_id(b, "image_id", t.image_id));
    } else {
        // A task's kind, host and image are what it is: change them by cancelling it and
        // making another.
        SHOAL_RETURN_IF_ERROR(
            only_keys(b, {"shutdown", "wol"}, {"id", "created_at", "updated_at"}));
    }
    SHOAL_RETURN_IF_ERROR(
        read_enum(b, "shutdown", t.shutdown, &store::shutdown_action_from_string));
    SHOAL_RETURN_IF_ERROR(read_bool(b, "wol", t.wol));
    return ok();
}

status from_json(const json& b, store::session& s, bool creating) {
    SHOAL_RETURN_IF_ERROR(only_keys(
        b, {"image_id", "group", "port", "receivers_min", "wait_max_s", "rate_bps"},
        {"id", "state", "tasks", "started_at", "finished_at", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"image_id", "group", "port"}));
    SHOAL_RETURN_IF_ERROR(read_id(b, "image_id", s.image_id));
    SHOAL_RETURN_IF_ERROR(read_string(b, "group", s.group, 64));
    SHOAL_RETURN_IF_ERROR(read_int(b, "port", s.port, 1, 65535));
    SHOAL_RETURN_IF_ERROR(read_int(b, "receivers_min", s.receivers_min, 1, 100000));
    SHOAL_RETURN_IF_ERROR(read_int(b, "wait_max_s", s.wait_max_s, 0, 7 * 86400));
    SHOAL_RETURN_IF_ERROR(
        read_int(b, "rate_bps", s.rate_bps, 0, std::numeric_limits<std::int64_t>::max()));
    return ok();
}

status task_template_from_json(const json& b, store::task_template& t, std::string_view prefix) {
    auto with_prefix = [&](status s) -> status {
        if (s || prefix.empty()) {
            return s;
        }
        return error::format(s.err().code(), 0, "{}.{}", prefix, s.err().context());
    };
    SHOAL_RETURN_IF_ERROR(with_prefix(only_keys(b, {"kind", "image_id", "shutdown", "wol"}, {})));
    SHOAL_RETURN_IF_ERROR(with_prefix(need(b, true, {"kind"})));
    SHOAL_RETURN_IF_ERROR(with_prefix(read_enum(b, "kind", t.kind, &store::task_kind_from_string)));
    SHOAL_RETURN_IF_ERROR(with_prefix(read_opt_id(b, "image_id", t.image_id)));
    SHOAL_RETURN_IF_ERROR(
        with_prefix(read_enum(b, "shutdown", t.shutdown, &store::shutdown_action_from_string)));
    SHOAL_RETURN_IF_ERROR(with_prefix(read_bool(b, "wol", t.wol)));
    if (store::task_needs_image(t.kind) && !t.image_id) {
        return with_prefix(bad("image_id", "is required for this kind of task"));
    }
    return ok();
}

status from_json(const json& b, store::schedule& s, bool creating) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(b, {"name", "kind", "at", "cron", "task", "hosts", "groups", "enabled"},
                  {"id", "next_run_at", "last_run_at", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"name", "kind", "task"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", s.name, 256));
    SHOAL_RETURN_IF_ERROR(read_enum(b, "kind", s.kind, &store::schedule_kind_from_string));
    SHOAL_RETURN_IF_ERROR(read_opt_time(b, "at", s.at));
    SHOAL_RETURN_IF_ERROR(read_string(b, "cron", s.cron, 256));
    if (auto it = b.find("task"); it != b.end()) {
        if (!it->is_object()) {
            return bad("task",
                       "must be an object: {\"kind\", \"image_id\", \"shutdown\", \"wol\"}");
        }
        SHOAL_RETURN_IF_ERROR(task_template_from_json(*it, s.task, "task"));
    }
    SHOAL_RETURN_IF_ERROR(read_ids(b, "hosts", s.hosts));
    SHOAL_RETURN_IF_ERROR(read_ids(b, "groups", s.groups));
    SHOAL_RETURN_IF_ERROR(read_bool(b, "enabled", s.enabled));
    return ok();
}

status from_json(const json& b, store::user& u, bool creating) {
    SHOAL_RETURN_IF_ERROR(
        only_keys(b, {"name", "role", "password"}, {"id", "created_at", "updated_at"}));
    SHOAL_RETURN_IF_ERROR(need(b, creating, {"name", "password"}));
    SHOAL_RETURN_IF_ERROR(read_string(b, "name", u.name, 256));
    SHOAL_RETURN_IF_ERROR(read_enum(b, "role", u.role, &store::user_role_from_string));
    return ok();
}

status progress_from_json(const json& b, store::task_progress& p) {
    SHOAL_RETURN_IF_ERROR(only_keys(
        b, {"state", "percent", "bytes_done", "bytes_total", "rate_Bps", "message"}, {"task_id"}));
    if (auto it = b.find("percent"); it != b.end()) {
        if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 100) {
            return bad("percent", "must be a number from 0 to 100");
        }
        p.percent = it->get<double>();
    }
    constexpr auto big = std::numeric_limits<std::int64_t>::max();
    SHOAL_RETURN_IF_ERROR(read_int(b, "bytes_done", p.bytes_done, 0, big));
    SHOAL_RETURN_IF_ERROR(read_int(b, "bytes_total", p.bytes_total, 0, big));
    SHOAL_RETURN_IF_ERROR(read_int(b, "rate_Bps", p.rate_Bps, 0, big));
    SHOAL_RETURN_IF_ERROR(read_string(b, "message", p.message, 1024));
    return ok();
}

}  // namespace shoal::api
