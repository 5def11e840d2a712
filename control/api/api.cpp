#include "api/api.h"

#include <charconv>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/csv_import.h"
#include "api/image_routes.h"
#include "api/json_codec.h"
#include "common/log.h"
#include "ipxe/mac.h"

namespace shoal::api {

namespace {

using http::method;
using http::request;
using http::response;
using store::record_id;

constexpr std::string_view api_prefix = "/api/v1/";
constexpr std::size_t path_segments_max = 4;

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

response error_response(unsigned status, std::string_view message, std::string_view field = {}) {
    json j = {{"error", message}};
    if (!field.empty()) {
        j["field"] = field;
    }
    return response::json(status, j);
}

// What a store (or validation) error means to an API client.
response from_error(const error& e) {
    std::string_view field = store::error_field(e);
    std::string message = e.describe();
    switch (e.code()) {
    case errc::invalid_argument:
    case errc::malformed: return error_response(400, message, field);
    case errc::conflict:
    case errc::exists: return error_response(409, message, field);
    case errc::not_found: return error_response(404, message);
    case errc::denied: return error_response(401, message);
    case errc::unavailable:
        log::warn("api: the store is unavailable: {}", message);
        return error_response(503, "the database cannot be reached now; try again shortly");
    case errc::unsupported: return error_response(501, message);
    default: log::warn("api: {}", message); return error_response(500, message);
    }
}

response unauthorized(std::string_view why) {
    auto r = error_response(401, why);
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"shoal\"");
    return r;
}

result<json> parse_body(const request& r) {
    if (r.body().empty()) {
        return error(errc::invalid_argument, "body: a JSON object is required");
    }
    json j = json::parse(r.body(), nullptr, false);
    if (j.is_discarded()) {
        return error(errc::invalid_argument, "body: is not valid JSON");
    }
    if (!j.is_object()) {
        return error(errc::invalid_argument, "body: must be a JSON object");
    }
    return j;
}

std::optional<record_id> parse_id(std::string_view text) {
    record_id id = 0;
    if (text.empty() || text.size() > 18) {
        return std::nullopt;
    }
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id < 1) {
        return std::nullopt;
    }
    return id;
}

// A query argument as an id / a bool / an enum; errors name the argument.
result<std::optional<record_id>> query_id(const request& r, const char* name) {
    auto v = r.query(name);
    if (!v) {
        return std::optional<record_id>();
    }
    auto id = parse_id(*v);
    if (!id) {
        return error::format(errc::invalid_argument, 0, "{}: must be an id (a whole number from 1)",
                             name);
    }
    return std::optional<record_id>(*id);
}

result<std::optional<bool>> query_bool(const request& r, const char* name) {
    auto v = r.query(name);
    if (!v) {
        return std::optional<bool>();
    }
    if (*v == "true" || *v == "1") {
        return std::optional<bool>(true);
    }
    if (*v == "false" || *v == "0") {
        return std::optional<bool>(false);
    }
    return error::format(errc::invalid_argument, 0, "{}: must be true or false", name);
}

struct caller {
    store::user user;
    store::token token;
    bool is_admin() const { return user.role == store::user_role::admin; }
};

class api_service {
public:
    api_service(api_deps deps, api_config config)
        : _repo(std::move(deps.repo)),
          _tasks(std::move(deps.tasks)),
          _counters(std::move(deps.counters)),
          _extra_metrics(std::move(deps.extra_metrics)),
          _config(std::move(config)) {}

    response handle(const request& r);
    response client_register(const request& r);
    response client_task(const request& r);
    response client_progress(const request& r);
    response metrics(const request& r);

private:
    using segments = std::vector<std::string_view>;

    result<caller> authenticate(const request& r);
    response login(const request& r);
    result<store::page> page_of(const request& r) const;

    response hosts(const request& r, const segments& s, const caller& who);
    response hosts_import(const request& r);
    response host_one(const request& r, store::host h, const std::string_view sub);
    response groups(const request& r, const segments& s, const caller& who);
    response tasks(const request& r, const segments& s, const caller& who);
    response sessions(const request& r, const segments& s);
    response users(const request& r, const segments& s, const caller& who);
    response tokens(const request& r, const segments& s, const caller& who);

    // The plain resources: list, create, get, patch, delete.
    template <class T, class List, class Create, class Get, class Update, class Delete>
    response crud(const request& r, const segments& s, std::string_view what, List list,
                  Create create, Get get, Update update, Delete del);

    result<store::task> task_for_key(const request& r);

    std::shared_ptr<store::repository> _repo;
    std::shared_ptr<control::task_control> _tasks;
    std::shared_ptr<http_counters> _counters;
    std::function<void(std::string&)> _extra_metrics;
    api_config _config;
};

result<caller> api_service::authenticate(const request& r) {
    auto header = r.header("Authorization");
    if (!header) {
        return error(errc::denied,
                     "an API token is required: Authorization: Bearer <token> "
                     "(POST /api/v1/login gives one)");
    }
    std::string_view token = bearer_token(*header);
    if (token.empty()) {
        return error(errc::denied, "the Authorization header must be \"Bearer <token>\"");
    }
    auto id = _repo->lookup_token(token);
    if (!id) {
        if (id.err().code() == errc::denied || id.err().code() == errc::not_found) {
            return error(errc::denied, "the API token is unknown or expired");
        }
        return id.err();
    }
    return caller{id->owner, id->record};
}

result<store::page> api_service::page_of(const request& r) const {
    store::page p;
    auto number = [&](const char* name, std::int64_t min, std::int64_t max,
                      std::int64_t& out) -> status {
        auto v = r.query(name);
        if (!v) {
            return ok();
        }
        std::int64_t n = 0;
        auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
        if (v->empty() || ec != std::errc() || end != v->data() + v->size() || n < min || n > max) {
            return error::format(errc::invalid_argument, 0,
                                 "{}: must be a whole number from {} to {}", name, min, max);
        }
        out = n;
        return ok();
    };
    SHOAL_RETURN_IF_ERROR(
        number("limit", 1, std::min(_config.list_limit_max, store::page::limit_max), p.limit));
    SHOAL_RETURN_IF_ERROR(number("offset", 0, std::int64_t{1} << 40, p.offset));
    return p;
}

template <class T>
json list_json(const std::vector<T>& items, const store::page& p) {
    json out = json::array();
    for (const auto& i : items) {
        out.push_back(to_json(i));
    }
    return {{"items", std::move(out)}, {"limit", p.limit}, {"offset", p.offset}};
}

template <class T, class List, class Create, class Get, class Update, class Delete>
response api_service::crud(const request& r, const segments& s, std::string_view what, List list,
                           Create create, Get get, Update update, Delete del) {
    if (s.size() == 1) {
        if (r.verb() == method::get || r.verb() == method::head) {
            auto p = page_of(r);
            if (!p) {
                return from_error(p.err());
            }
            result<std::vector<T>> items = list(*p);
            if (!items) {
                return from_error(items.err());
            }
            return response::json(200, list_json(*items, *p));
        }
        if (r.verb() == method::post) {
            auto body = parse_body(r);
            if (!body) {
                return from_error(body.err());
            }
            T t{};
            if (auto st = from_json(*body, t, true); !st) {
                return from_error(st.err());
            }
            result<T> made = create(std::move(t));
            if (!made) {
                return from_error(made.err());
            }
            return response::json(201, to_json(*made));
        }
        return error_response(
            405, fmt::format("{} is not allowed on {}", http::method_name(r.verb()), r.path()));
    }
    auto id = parse_id(s[1]);
    if (!id || s.size() > 2) {
        return error_response(404, fmt::format("nothing at {}", r.path()));
    }
    result<T> current = get(*id);
    if (!current) {
        if (current.err().code() == errc::not_found) {
            return error_response(404, fmt::format("no {} with id {}", what, *id));
        }
        return from_error(current.err());
    }
    switch (r.verb()) {
    case method::get:
    case method::head: return response::json(200, to_json(*current));
    case method::patch: {
        auto body = parse_body(r);
        if (!body) {
            return from_error(body.err());
        }
        T t = std::move(*current);
        if (auto st = from_json(*body, t, false); !st) {
            return from_error(st.err());
        }
        result<T> changed = update(std::move(t));
        if (!changed) {
            return from_error(changed.err());
        }
        return response::json(200, to_json(*changed));
    }
    case method::del: {
        if (auto st = del(*id); !st) {
            return from_error(st.err());
        }
        return response::text(204, "");
    }
    default:
        return error_response(
            405, fmt::format("{} is not allowed on {}", http::method_name(r.verb()), r.path()));
    }
}

response api_service::handle(const request& r) {
    std::string_view rest = r.path().substr(api_prefix.size());
    segments s;
    while (!rest.empty() && s.size() <= path_segments_max) {
        auto slash = rest.find('/');
        s.push_back(rest.substr(0, slash));
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    }
    if (s.empty() || s.size() > path_segments_max) {
        return error_response(404, fmt::format("nothing at {}", r.path()));
    }
    if (s[0] == "login" && s.size() == 1) {
        if (r.verb() != method::post) {
            return error_response(405, "POST /api/v1/login {\"user\", \"password\"}");
        }
        return login(r);
    }
    if (s[0] == "openapi.json" && s.size() == 1) {
        return response::json(200, openapi_document());
    }
    auto who = authenticate(r);
    if (!who) {
        if (who.err().code() == errc::denied) {
            return unauthorized(who.err().context());
        }
        return from_error(who.err());
    }
    bool writing = r.verb() != method::get && r.verb() != method::head;
    if (writing && who->user.role == store::user_role::viewer) {
        return error_response(
            403, fmt::format("user {} is a viewer: viewers only read", who->user.name));
    }
    const std::string_view res = s[0];
    auto& repo = *_repo;
    if (res == "hosts") {
        return hosts(r, s, *who);
    }
    if (res == "groups") {
        return groups(r, s, *who);
    }
    if (res == "tasks") {
        return tasks(r, s, *who);
    }
    if (res == "sessions") {
        return sessions(r, s);
    }
    if (res == "users") {
        return users(r, s, *who);
    }
    if (res == "tokens") {
        return tokens(r, s, *who);
    }
    if (res == "images") {
        return crud<store::image>(
            r, s, "image", [&](store::page p) { return repo.list_images(p); },
            [&](store::image i) { return repo.create_image(std::move(i)); },
            [&](record_id id) { return repo.get_image(id); },
            [&](store::image i) { return repo.update_image(std::move(i)); },
            [&](record_id id) { return repo.delete_image(id); });
    }
    if (res == "storage-nodes") {
        return crud<store::storage_node>(
            r, s, "storage node", [&](store::page p) { return repo.list_storage_nodes(p); },
            [&](store::storage_node n) { return repo.create_storage_node(std::move(n)); },
            [&](record_id id) { return repo.get_storage_node(id); },
            [&](store::storage_node n) { return repo.update_storage_node(std::move(n)); },
            [&](record_id id) { return repo.delete_storage_node(id); });
    }
    if (res == "storage-groups") {
        return crud<store::storage_group>(
            r, s, "storage group", [&](store::page p) { return repo.list_storage_groups(p); },
            [&](store::storage_group g) { return repo.create_storage_group(std::move(g)); },
            [&](record_id id) { return repo.get_storage_group(id); },
            [&](store::storage_group g) { return repo.update_storage_group(std::move(g)); },
            [&](record_id id) { return repo.delete_storage_group(id); });
    }
    if (res == "schedules") {
        return crud<store::schedule>(
            r, s, "schedule", [&](store::page p) { return repo.list_schedules(p); },
            [&](store::schedule x) { return repo.create_schedule(std::move(x)); },
            [&](record_id id) { return repo.get_schedule(id); },
            [&](store::schedule x) { return repo.update_schedule(std::move(x)); },
            [&](record_id id) { return repo.delete_schedule(id); });
    }
    return error_response(404, fmt::format("no resource {} (see /api/v1/openapi.json)",
                                           std::string(res.substr(0, 40))));
}

response api_service::login(const request& r) {
    auto body = parse_body(r);
    if (!body) {
        return from_error(body.err());
    }
    auto name = string_field(*body, "user", true, 256);
    if (!name) {
        return from_error(name.err());
    }
    auto password = string_field(*body, "password", true, 1024);
    if (!password) {
        return from_error(password.err());
    }
    for (const auto& [key, value] : body->items()) {
        if (key != "user" && key != "password") {
            return error_response(400, "is not a field here (fields: user, password)",
                                  key.substr(0, 40));
        }
    }
    auto u = _repo->verify_password(*name, *password);
    if (!u) {
        if (u.err().code() == errc::denied || u.err().code() == errc::not_found) {
            log::info("api: login refused for user '{:.64}' from {}", *name, r.remote_address());
            return unauthorized("wrong user name or password");
        }
        return from_error(u.err());
    }
    std::int64_t expires = now_s() + _config.login_token_ttl_s;
    auto t = _repo->create_token(u->id, "login", expires);
    if (!t) {
        return from_error(t.err());
    }
    log::info("api: user {} logged in from {}", u->name, r.remote_address());
    return response::json(
        200, {{"token", t->secret}, {"expires_at", format_time(expires)}, {"user", to_json(*u)}});
}

response api_service::hosts(const request& r, const segments& s, const caller& who) {
    auto& repo = *_repo;
    if (s.size() == 2 && s[1] == "import") {
        if (r.verb() != method::post) {
            return error_response(405, "POST /api/v1/hosts/import with a CSV body");
        }
        return hosts_import(r);
    }
    if (s.size() >= 3 && s[1] == "by-mac") {
        auto h = repo.get_host_by_mac(s[2]);
        if (!h) {
            if (h.err().code() == errc::invalid_argument) {
                return from_error(h.err());
            }
            if (h.err().code() == errc::not_found) {
                return error_response(404, fmt::format("no host with MAC {:.40}", s[2]));
            }
            return from_error(h.err());
        }
        return host_one(r, std::move(*h), s.size() == 4 ? s[3] : std::string_view());
    }
    if (s.size() == 1 && (r.verb() == method::get || r.verb() == method::head)) {
        store::host_filter f;
        auto group = query_id(r, "group_id");
        auto image = query_id(r, "image_id");
        auto pending = query_bool(r, "pending");
        auto p = page_of(r);
        for (const status& st :
             {group ? ok() : status(group.err()), image ? ok() : status(image.err()),
              pending ? ok() : status(pending.err()), p ? ok() : status(p.err())}) {
            if (!st) {
                return from_error(st.err());
            }
        }
        f.group_id = *group;
        f.image_id = *image;
        f.pending = *pending;
        auto items = repo.list_hosts(f, *p);
        if (!items) {
            return from_error(items.err());
        }
        auto total = repo.count_hosts(f);
        if (!total) {
            return from_error(total.err());
        }
        json out = list_json(*items, *p);
        out["total"] = *total;
        return response::json(200, out);
    }
    if (s.size() == 1) {
        return crud<store::host>(
            r, s, "host", [&](store::page) { return result<std::vector<store::host>>({}); },
            [&](store::host h) { return repo.create_host(std::move(h)); },
            [&](record_id id) { return repo.get_host(id); },
            [&](store::host h) { return repo.update_host(std::move(h)); },
            [&](record_id id) { return repo.delete_host(id); });
    }
    auto id = parse_id(s[1]);
    if (!id || s.size() > 3) {
        return error_response(404, fmt::format("nothing at {}", r.path()));
    }
    auto h = repo.get_host(*id);
    if (!h) {
        if (h.err().code() == errc::not_found) {
            return error_response(404, fmt::format("no host with id {}", *id));
        }
        return from_error(h.err());
    }
    (void)who;
    return host_one(r, std::move(*h), s.size() == 3 ? s[2] : std::string_view());
}

response api_service::host_one(const request& r, store::host h, std::string_view sub) {
    if (sub == "wake") {
        if (r.verb() != method::post) {
            return error_response(405, "POST wakes the host");
        }
        auto mac = ipxe::parse_mac(h.mac);
        if (!mac) {
            return from_error(mac.err());
        }
        if (auto st = _tasks->wake(h.id, *mac); !st) {
            if (st.err().code() == errc::unsupported) {
                return error_response(501, st.err().describe());
            }
            return error_response(502,
                                  fmt::format("cannot wake {}: {}", h.name, st.err().describe()));
        }
        return response::json(202, {{"woken", h.id}, {"mac", h.mac}});
    }
    if (!sub.empty()) {
        return error_response(404, fmt::format("nothing at {}", r.path()));
    }
    switch (r.verb()) {
    case method::get:
    case method::head: return response::json(200, to_json(h));
    case method::patch: {
        auto body = parse_body(r);
        if (!body) {
            return from_error(body.err());
        }
        if (auto st = from_json(*body, h, false); !st) {
            return from_error(st.err());
        }
        auto changed = _repo->update_host(std::move(h));
        if (!changed) {
            return from_error(changed.err());
        }
        return response::json(200, to_json(*changed));
    }
    case method::del:
        if (auto st = _repo->delete_host(h.id); !st) {
            return from_error(st.err());
        }
        return response::text(204, "");
    default:
        return error_response(
            405, fmt::format("{} is not allowed on {}", http::method_name(r.verb()), r.path()));
    }
}

response api_service::hosts_import(const request& r) {
    csv_import parsed = parse_fog_hosts_csv(r.body());
    auto lines_json = [](const std::vector<csv_line_error>& errors) {
        json lines = json::array();
        for (const auto& e : errors) {
            json j = {{"line", e.line}, {"error", e.message}};
            if (!e.field.empty()) {
                j["field"] = e.field;
            }
            lines.push_back(std::move(j));
        }
        return lines;
    };
    // Images by name (or id), each looked up once.
    std::map<std::string, std::optional<record_id>> images;
    std::vector<store::host> hosts;
    hosts.reserve(parsed.hosts.size());
    for (const auto& c : parsed.hosts) {
        store::host h;
        h.mac = c.mac;
        h.name = c.name;
        h.description = c.description;
        if (!c.image.empty()) {
            auto [it, fresh] = images.emplace(c.image, std::nullopt);
            if (fresh) {
                auto byname = _repo->get_image_by_name(c.image);
                if (byname) {
                    it->second = byname->id;
                } else if (byname.err().code() != errc::not_found &&
                           byname.err().code() != errc::invalid_argument) {
                    return from_error(byname.err());
                } else if (auto id = parse_id(c.image)) {
                    if (auto byid = _repo->get_image(*id)) {
                        it->second = byid->id;
                    }
                }
            }
            if (!it->second) {
                parsed.errors.push_back(
                    {c.line, "image", fmt::format("no image named {:.64}", c.image)});
                continue;
            }
            h.image_id = it->second;
        }
        hosts.push_back(std::move(h));
    }
    if (!parsed.errors.empty()) {
        std::sort(parsed.errors.begin(), parsed.errors.end(),
                  [](const auto& a, const auto& b) { return a.line < b.line; });
        json j = {
            {"error", fmt::format("{} bad line(s); nothing was imported", parsed.errors.size())},
            {"lines", lines_json(parsed.errors)}};
        if (parsed.errors.size() == 1 && !parsed.errors[0].field.empty()) {
            j["field"] = parsed.errors[0].field;
        }
        return response::json(400, j);
    }
    auto stored = _repo->import_hosts(std::move(hosts));
    if (!stored) {
        // "hosts[3].mac: ..." names the index: turn it into the file's line.
        const error& e = stored.err();
        std::string_view ctx = e.context();
        if ((e.code() == errc::conflict || e.code() == errc::invalid_argument) &&
            ctx.starts_with("hosts[")) {
            std::size_t close = ctx.find("].");
            std::size_t index = 0;
            auto [end, ec] = std::from_chars(ctx.data() + 6, ctx.data() + ctx.size(), index);
            if (close != std::string_view::npos && ec == std::errc() && end == ctx.data() + close &&
                index < parsed.hosts.size()) {
                std::string_view rest = ctx.substr(close + 2);
                auto colon = rest.find(": ");
                std::string field(colon == std::string_view::npos ? "" : rest.substr(0, colon));
                csv_line_error le{parsed.hosts[index].line, field, std::string(rest)};
                unsigned status = e.code() == errc::conflict ? 409 : 400;
                json j = {
                    {"error", fmt::format("line {}: {}; nothing was imported", le.line, rest)},
                    {"lines", lines_json({le})}};
                if (!field.empty()) {
                    j["field"] = field;
                }
                return response::json(status, j);
            }
        }
        return from_error(e);
    }
    log::info("api: imported {} hosts from CSV", *stored);
    return response::json(201, {{"imported", *stored}});
}

response api_service::groups(const request& r, const segments& s, const caller& who) {
    auto& repo = *_repo;
    if (s.size() == 3 && s[2] == "tasks") {
        if (r.verb() != method::post) {
            return error_response(405, "POST makes a task for every host of the group");
        }
        auto id = parse_id(s[1]);
        if (!id) {
            return error_response(404, fmt::format("nothing at {}", r.path()));
        }
        auto g = repo.get_group(*id);
        if (!g) {
            return g.err().code() == errc::not_found
                       ? error_response(404, fmt::format("no group with id {}", *id))
                       : from_error(g.err());
        }
        auto body = parse_body(r);
        if (!body) {
            return from_error(body.err());
        }
        store::task_template tt;
        if (auto st = task_template_from_json(*body, tt, ""); !st) {
            return from_error(st.err());
        }
        if (g->hosts.empty()) {
            return error_response(409, fmt::format("group {} has no hosts", g->name), "hosts");
        }
        // Every member is checked first, so that a busy host stops the whole request before
        // any task is made.
        for (record_id host_id : g->hosts) {
            auto open = repo.open_task_for_host(host_id);
            if (!open) {
                return from_error(open.err());
            }
            if (*open) {
                return error_response(
                    409,
                    fmt::format("host {} already has task {} ({}): cancel it first", host_id,
                                (*open)->id, store::to_string((*open)->state)),
                    "host_id");
            }
        }
        json made = json::array();
        std::vector<record_id> ids;
        for (record_id host_id : g->hosts) {
            store::task t;
            t.kind = tt.kind;
            t.host_id = host_id;
            t.image_id = tt.image_id;
            t.shutdown = tt.shutdown;
            t.wol = tt.wol;
            t.created_by = who.user.id;
            auto c = repo.create_task(
                std::move(t), fmt::format("created for group {} by {}", g->name, who.user.name));
            if (!c) {
                // Undo what this request made: all or nothing.
                for (record_id done : ids) {
                    (void)repo.delete_task(done);
                }
                return from_error(c.err());
            }
            ids.push_back(c->id);
            made.push_back(to_json(*c));
        }
        for (record_id id2 : ids) {
            _tasks->task_changed(id2);
        }
        return response::json(201, {{"items", std::move(made)}});
    }
    return crud<store::host_group>(
        r, s, "group", [&](store::page p) { return repo.list_groups(p); },
        [&](store::host_group g) { return repo.create_group(std::move(g)); },
        [&](record_id id) { return repo.get_group(id); },
        [&](store::host_group g) { return repo.update_group(std::move(g)); },
        [&](record_id id) { return repo.delete_group(id); });
}

response api_service::tasks(const request& r, const segments& s, const caller& who) {
    auto& repo = *_repo;
    if (s.size() == 3) {
        auto id = parse_id(s[1]);
        if (!id) {
            return error_response(404, fmt::format("nothing at {}", r.path()));
        }
        if (s[2] == "cancel") {
            if (r.verb() != method::post) {
                return error_response(405, "POST cancels the task");
            }
            auto t = repo.transition_task(*id, store::task_state::cancelled,
                                          fmt::format("cancelled by {}", who.user.name));
            if (!t) {
                return from_error(t.err());
            }
            _tasks->task_changed(*id);
            return response::json(200, to_json(*t));
        }
        if (s[2] == "events") {
            if (r.verb() != method::get && r.verb() != method::head) {
                return error_response(405, "GET lists the task's history");
            }
            if (auto t = repo.get_task(*id); !t) {
                return from_error(t.err());
            }
            auto events = repo.task_events(*id);
            if (!events) {
                return from_error(events.err());
            }
            json items = json::array();
            for (const auto& e : *events) {
                items.push_back(to_json(e));
            }
            return response::json(200, {{"items", std::move(items)}});
        }
        return error_response(404, fmt::format("nothing at {}", r.path()));
    }
    if (s.size() == 1 && (r.verb() == method::get || r.verb() == method::head)) {
        store::task_filter f;
        auto host = query_id(r, "host_id");
        auto session = query_id(r, "session_id");
        auto open = query_bool(r, "open");
        auto p = page_of(r);
        for (const status& st :
             {host ? ok() : status(host.err()), session ? ok() : status(session.err()),
              open ? ok() : status(open.err()), p ? ok() : status(p.err())}) {
            if (!st) {
                return from_error(st.err());
            }
        }
        if (auto v = r.query("state")) {
            auto st = store::task_state_from_string(*v, "state");
            if (!st) {
                return from_error(st.err());
            }
            f.state = *st;
        }
        if (auto v = r.query("kind")) {
            auto k = store::task_kind_from_string(*v, "kind");
            if (!k) {
                return from_error(k.err());
            }
            f.kind = *k;
        }
        f.host_id = *host;
        f.session_id = *session;
        f.open_only = open->value_or(false);
        auto items = repo.list_tasks(f, *p);
        if (!items) {
            return from_error(items.err());
        }
        auto total = repo.count_tasks(f);
        if (!total) {
            return from_error(total.err());
        }
        json out = list_json(*items, *p);
        out["total"] = *total;
        return response::json(200, out);
    }
    return crud<store::task>(
        r, s, "task", [&](store::page) { return result<std::vector<store::task>>({}); },
        [&](store::task t) -> result<store::task> {
            t.created_by = who.user.id;
            auto c = repo.create_task(std::move(t), fmt::format("created by {}", who.user.name));
            if (c) {
                _tasks->task_changed(c->id);
            }
            return c;
        },
        [&](record_id id) { return repo.get_task(id); },
        // The store has no general task update: shutdown and wol are set on creation, and a
        // PATCH that asks to change them is refused rather than silently ignored.
        [&](store::task t) -> result<store::task> {
            auto before = repo.get_task(t.id);
            if (!before) {
                return before.err();
            }
            if (before->shutdown != t.shutdown || before->wol != t.wol) {
                return error(errc::conflict,
                             "shutdown: a task's settings are fixed once made; cancel it and "
                             "make another");
            }
            return before;
        },
        [&](record_id id) { return repo.delete_task(id); });
}

response api_service::sessions(const request& r, const segments& s) {
    auto& repo = *_repo;
    if (s.size() == 1 && (r.verb() == method::get || r.verb() == method::head)) {
        store::session_filter f;
        auto image = query_id(r, "image_id");
        auto p = page_of(r);
        if (!image) {
            return from_error(image.err());
        }
        if (!p) {
            return from_error(p.err());
        }
        if (auto v = r.query("state")) {
            auto st = store::session_state_from_string(*v, "state");
            if (!st) {
                return from_error(st.err());
            }
            f.state = *st;
        }
        f.image_id = *image;
        auto items = repo.list_sessions(f, *p);
        if (!items) {
            return from_error(items.err());
        }
        return response::json(200, list_json(*items, *p));
    }
    if (s.size() == 2 && r.verb() == method::patch) {
        // A session's parameters are fixed once made; its state moves (e.g. to cancelled).
        auto id = parse_id(s[1]);
        if (!id) {
            return error_response(404, fmt::format("nothing at {}", r.path()));
        }
        auto body = parse_body(r);
        if (!body) {
            return from_error(body.err());
        }
        for (const auto& [key, value] : body->items()) {
            if (key != "state") {
                return error_response(400, "a session's state is all that changes",
                                      key.substr(0, 40));
            }
        }
        auto state = string_field(*body, "state", true, 32);
        if (!state) {
            return from_error(state.err());
        }
        auto to = store::session_state_from_string(*state, "state");
        if (!to) {
            return from_error(to.err());
        }
        auto changed = repo.set_session_state(*id, *to);
        if (!changed) {
            return from_error(changed.err());
        }
        for (record_id t : changed->tasks) {
            _tasks->task_changed(t);
        }
        return response::json(200, to_json(*changed));
    }
    return crud<store::session>(
        r, s, "session", [&](store::page) { return result<std::vector<store::session>>({}); },
        [&](store::session x) { return repo.create_session(std::move(x)); },
        [&](record_id id) { return repo.get_session(id); },
        [&](store::session x) { return result<store::session>(x); },
        [&](record_id id) { return repo.delete_session(id); });
}

response api_service::users(const request& r, const segments& s, const caller& who) {
    auto& repo = *_repo;
    bool writing = r.verb() != method::get && r.verb() != method::head;
    if (writing && !who.is_admin()) {
        return error_response(403, fmt::format("only an admin manages users ({} is {})",
                                               who.user.name, store::to_string(who.user.role)));
    }
    // The password travels with the record in the body but is stored apart from it.
    std::optional<std::string> password;
    if (r.verb() == method::post || r.verb() == method::patch) {
        auto body = parse_body(r);
        if (!body) {
            return from_error(body.err());
        }
        if (body->contains("password")) {
            auto pw = string_field(*body, "password", false, 1024);
            if (!pw) {
                return from_error(pw.err());
            }
            if (auto st = store::validate_password(*pw); !st) {
                return from_error(st.err());
            }
            password = *pw;
        }
    }
    return crud<store::user>(
        r, s, "user", [&](store::page p) { return repo.list_users(p); },
        [&](store::user u) { return repo.create_user(std::move(u), password.value_or("")); },
        [&](record_id id) { return repo.get_user(id); },
        [&](store::user u) -> result<store::user> {
            auto changed = repo.update_user(std::move(u));
            if (changed && password) {
                if (auto st = repo.set_password(changed->id, *password); !st) {
                    return st.err();
                }
            }
            return changed;
        },
        [&](record_id id) -> status {
            if (id == who.user.id) {
                return error(errc::conflict, "id: you cannot delete yourself");
            }
            return repo.delete_user(id);
        });
}

response api_service::tokens(const request& r, const segments& s, const caller& who) {
    auto& repo = *_repo;
    if (s.size() == 1 && (r.verb() == method::get || r.verb() == method::head)) {
        auto p = page_of(r);
        if (!p) {
            return from_error(p.err());
        }
        auto user = query_id(r, "user_id");
        if (!user) {
            return from_error(user.err());
        }
        std::optional<record_id> of = *user;
        if (!who.is_admin()) {
            if (of && *of != who.user.id) {
                return error_response(403, "only an admin sees other users' tokens");
            }
            of = who.user.id;
        }
        auto items = repo.list_tokens(of, *p);
        if (!items) {
            return from_error(items.err());
        }
        return response::json(200, list_json(*items, *p));
    }
    if (s.size() == 1 && r.verb() == method::post) {
        auto body = parse_body(r);
        if (!body) {
            return from_error(body.err());
        }
        for (const auto& [key, value] : body->items()) {
            if (key != "name" && key != "expires_at" && key != "user_id") {
                return error_response(400,
                                      "is not a field here (fields: name, expires_at, user_id)",
                                      key.substr(0, 40));
            }
        }
        auto name = string_field(*body, "name", true, 256);
        if (!name) {
            return from_error(name.err());
        }
        std::optional<std::int64_t> expires;
        if (auto it = body->find("expires_at"); it != body->end() && !it->is_null()) {
            if (!it->is_string()) {
                return error_response(400, "expires_at: must be an RFC 3339 time or null",
                                      "expires_at");
            }
            auto t = parse_time(it->get_ref<const std::string&>(), "expires_at");
            if (!t) {
                return from_error(t.err());
            }
            if (*t <= now_s()) {
                return error_response(400, "expires_at: is in the past", "expires_at");
            }
            expires = *t;
        }
        record_id user = who.user.id;
        if (auto it = body->find("user_id"); it != body->end()) {
            if (!it->is_number_integer() || it->get<std::int64_t>() < 1) {
                return error_response(400, "user_id: must be an id", "user_id");
            }
            user = it->get<std::int64_t>();
            if (user != who.user.id && !who.is_admin()) {
                return error_response(403, "only an admin makes tokens for other users");
            }
        }
        auto t = repo.create_token(user, *name, expires);
        if (!t) {
            return from_error(t.err());
        }
        json j = to_json(t->record);
        j["token"] = t->secret;
        return response::json(201, j);
    }
    if (s.size() == 2) {
        auto id = parse_id(s[1]);
        if (!id) {
            return error_response(404, fmt::format("nothing at {}", r.path()));
        }
        // Tokens are found through the list: the store looks them up by secret, not id.
        auto mine =
            repo.list_tokens(who.is_admin() ? std::nullopt : std::optional<record_id>(who.user.id),
                             store::page{store::page::limit_max, 0});
        if (!mine) {
            return from_error(mine.err());
        }
        const store::token* found = nullptr;
        for (const auto& t : *mine) {
            if (t.id == *id) {
                found = &t;
            }
        }
        if (found == nullptr) {
            return error_response(404, fmt::format("no token with id {} of yours", *id));
        }
        if (r.verb() == method::get || r.verb() == method::head) {
            return response::json(200, to_json(*found));
        }
        if (r.verb() == method::del) {
            if (auto st = repo.delete_token(*id); !st) {
                return from_error(st.err());
            }
            return response::text(204, "");
        }
    }
    return error_response(405, fmt::format("{} is not allowed on {} (tokens are made and "
                                           "deleted, not changed)",
                                           http::method_name(r.verb()), r.path()));
}

// ---- the client OS ----

result<store::task> api_service::task_for_key(const request& r) {
    auto key = r.header("X-Shoal-Task-Key");
    if (!key || key->empty() || key->size() > 256) {
        return error(errc::denied,
                     "the X-Shoal-Task-Key header (shoal.key= on the kernel "
                     "command line) is required");
    }
    auto t = _repo->get_task_by_key(*key);
    if (!t) {
        if (t.err().code() == errc::denied || t.err().code() == errc::not_found) {
            return error(errc::denied, "the task key is not valid");
        }
        return t.err();
    }
    if (store::is_final(t->state)) {
        return error::format(errc::denied, 0, "task {} is {}: nothing more to do", t->id,
                             store::to_string(t->state));
    }
    return t;
}

response api_service::client_register(const request& r) {
    auto body = parse_body(r);
    if (!body) {
        return from_error(body.err());
    }
    for (const auto& [key, value] : body->items()) {
        if (key != "mac" && key != "name" && key != "inventory") {
            return error_response(400, "is not a field here (fields: mac, name, inventory)",
                                  key.substr(0, 40));
        }
    }
    auto mac_text = string_field(*body, "mac", true, 64);
    if (!mac_text) {
        return from_error(mac_text.err());
    }
    auto mac = store::normalize_mac(*mac_text, "mac");
    if (!mac) {
        return from_error(mac.err());
    }
    std::optional<std::string> inventory;
    if (auto it = body->find("inventory"); it != body->end()) {
        if (!it->is_object()) {
            return error_response(400, "inventory: must be a JSON object", "inventory");
        }
        inventory = it->dump();
    }
    auto name = string_field(*body, "name", false, 256);
    if (!name) {
        return from_error(name.err());
    }
    if (!name->empty()) {
        if (auto st = store::validate_name(*name, "name"); !st) {
            return from_error(st.err());
        }
    }
    auto known = _repo->get_host_by_mac(*mac);
    if (known) {
        // A known PC refreshes what it is, never who it is.
        auto h = _repo->touch_host(known->id, now_s(), inventory);
        if (!h) {
            return from_error(h.err());
        }
        return response::json(200, {{"id", h->id}, {"name", h->name}, {"pending", h->pending}});
    }
    if (known.err().code() != errc::not_found) {
        return from_error(known.err());
    }
    store::host h;
    h.mac = *mac;
    std::string fallback = "pending-" + *mac;
    std::erase(fallback, ':');
    h.name = name->empty() ? fallback : *name;
    h.pending = true;
    h.inventory = inventory.value_or("{}");
    h.last_seen_at = now_s();
    auto made = _repo->create_host(h);
    if (!made && made.err().code() == errc::conflict && h.name != fallback) {
        // The name it asked for is taken: register it under its MAC, for an admin to name.
        h.name = fallback;
        made = _repo->create_host(h);
    }
    if (!made) {
        return from_error(made.err());
    }
    log::info("api: {} registered itself as pending host {} ({})", r.remote_address(), made->name,
              made->mac);
    return response::json(201, {{"id", made->id}, {"name", made->name}, {"pending", true}});
}

response api_service::client_task(const request& r) {
    auto t = task_for_key(r);
    if (!t) {
        return t.err().code() == errc::denied ? error_response(403, t.err().context())
                                              : from_error(t.err());
    }
    json j = {{"task", to_json(*t)}};
    if (auto h = _repo->get_host(t->host_id)) {
        j["host"] = {{"id", h->id}, {"mac", h->mac}, {"name", h->name}};
    }
    if (t->image_id) {
        auto i = _repo->get_image(*t->image_id);
        if (!i) {
            return from_error(i.err());
        }
        std::string base = _config.images_url.empty() ? "/store" : _config.images_url;
        j["image"] = {{"id", i->id},
                      {"name", i->name},
                      {"kind", store::to_string(i->kind)},
                      {"size_bytes", i->size_bytes},
                      {"store_url", base}};
    }
    if (t->session_id) {
        auto s = _repo->get_session(*t->session_id);
        if (!s) {
            return from_error(s.err());
        }
        j["session"] = {{"id", s->id},
                        {"group", s->group},
                        {"port", s->port},
                        {"state", store::to_string(s->state)},
                        {"rate_bps", s->rate_bps},
                        {"receiver_id", t->id}};
    }
    return response::json(200, j);
}

response api_service::client_progress(const request& r) {
    auto t = task_for_key(r);
    if (!t) {
        return t.err().code() == errc::denied ? error_response(403, t.err().context())
                                              : from_error(t.err());
    }
    auto body = parse_body(r);
    if (!body) {
        return from_error(body.err());
    }
    if (auto it = body->find("task_id"); it != body->end()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() != t->id) {
            return error_response(403, "this key is for another task", "task_id");
        }
    }
    store::task_progress p = t->progress;
    if (auto st = progress_from_json(*body, p); !st) {
        return from_error(st.err());
    }
    if (auto it = body->find("state"); it != body->end()) {
        if (!it->is_string()) {
            return error_response(400, "state: must be a string", "state");
        }
        auto to = store::task_state_from_string(it->get_ref<const std::string&>(), "state");
        if (!to) {
            return from_error(to.err());
        }
        if (*to == store::task_state::cancelled || *to == store::task_state::queued) {
            return error_response(403, "state: a PC does not cancel or requeue its task", "state");
        }
        if (*to != t->state) {
            // Write the last progress before a final state freezes the task.
            if (store::is_final(*to)) {
                auto w = _repo->update_task_progress(t->id, p);
                if (!w) {
                    return from_error(w.err());
                }
            }
            auto moved = _repo->transition_task(t->id, *to, p.message);
            if (!moved) {
                return from_error(moved.err());
            }
            _tasks->task_changed(t->id);
            if (store::is_final(*to)) {
                return response::json(200, to_json(*moved));
            }
        }
    }
    auto w = _repo->update_task_progress(t->id, p);
    if (!w) {
        return from_error(w.err());
    }
    return response::json(200, to_json(*w));
}

response api_service::metrics(const request&) {
    std::string out;
    out.reserve(8192);
    metric_family(out, "shoal_tasks", "gauge", "tasks by state");
    for (auto st :
         {store::task_state::queued, store::task_state::active, store::task_state::in_progress,
          store::task_state::complete, store::task_state::failed, store::task_state::cancelled}) {
        store::task_filter f;
        f.state = st;
        auto n = _repo->count_tasks(f);
        if (!n) {
            return from_error(n.err());
        }
        metric_sample(out, "shoal_tasks", {{"state", store::to_string(st)}},
                      static_cast<double>(*n));
    }
    metric_family(out, "shoal_sessions", "gauge",
                  "multicast sessions by state (counted up to 1000 each)");
    for (auto st : {store::session_state::waiting, store::session_state::running,
                    store::session_state::complete, store::session_state::failed,
                    store::session_state::cancelled}) {
        store::session_filter f;
        f.state = st;
        auto n = _repo->list_sessions(f, store::page{store::page::limit_max, 0});
        if (!n) {
            return from_error(n.err());
        }
        metric_sample(out, "shoal_sessions", {{"state", store::to_string(st)}},
                      static_cast<double>(n->size()));
    }
    // Bytes and rates of the sessions' receivers, summed from their tasks' progress.
    {
        store::task_filter f;
        f.state = store::task_state::in_progress;
        auto active = _repo->list_tasks(f, store::page{store::page::limit_max, 0});
        if (!active) {
            return from_error(active.err());
        }
        double bytes = 0;
        double rate = 0;
        for (const auto& t : *active) {
            bytes += static_cast<double>(t.progress.bytes_done);
            rate += static_cast<double>(t.progress.rate_Bps);
        }
        metric_family(out, "shoal_tasks_in_progress_bytes_done", "gauge",
                      "bytes written so far by the tasks in progress");
        metric_sample(out, "shoal_tasks_in_progress_bytes_done", {}, bytes);
        metric_family(out, "shoal_tasks_in_progress_rate_bytes_per_second", "gauge",
                      "the summed rate the tasks in progress report");
        metric_sample(out, "shoal_tasks_in_progress_rate_bytes_per_second", {}, rate);
    }
    for (std::optional<bool> pending : {std::optional<bool>(false), std::optional<bool>(true)}) {
        store::host_filter f;
        f.pending = pending;
        auto n = _repo->count_hosts(f);
        if (!n) {
            return from_error(n.err());
        }
        if (!*pending) {
            metric_family(out, "shoal_hosts", "gauge", "hosts known, pending or approved");
        }
        metric_sample(out, "shoal_hosts", {{"pending", *pending ? "true" : "false"}},
                      static_cast<double>(*n));
    }
    _counters->write(out);
    _tasks->write_metrics(out);
    if (_extra_metrics) {
        _extra_metrics(out);
    }
    return response::text(200, std::move(out), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

std::string_view bearer_token(std::string_view authorization) noexcept {
    constexpr std::string_view scheme = "Bearer ";
    if (authorization.size() <= scheme.size()) {
        return {};
    }
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        // The scheme is case-insensitive (RFC 9110).
        char a = authorization[i];
        char b = scheme[i];
        if ((a | 0x20) != (b | 0x20)) {
            return {};
        }
    }
    std::string_view token = authorization.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') {
        token.remove_prefix(1);
    }
    while (!token.empty() && token.back() == ' ') {
        token.remove_suffix(1);
    }
    if (token.empty() || token.size() > 256) {
        return {};
    }
    for (char c : token) {
        if (c <= ' ' || c > '~') {
            return {};
        }
    }
    return token;
}

void add_api_routes(http::router& routes, api_deps deps, api_config config) {
    SHOAL_ASSERT(deps.repo && deps.tasks && deps.counters);
    add_image_routes(routes, deps.repo, {config.image_store_dir});
    auto svc = std::make_shared<api_service>(std::move(deps), std::move(config));
    for (method m : {method::get, method::post, method::put, method::patch, method::del}) {
        routes.add_prefix(m, std::string(api_prefix),
                          [svc](const request& r) { return svc->handle(r); });
    }
    routes.add(method::post, "/client/register",
               [svc](const request& r) { return svc->client_register(r); });
    routes.add(method::get, "/client/task",
               [svc](const request& r) { return svc->client_task(r); });
    routes.add(method::post, "/client/progress",
               [svc](const request& r) { return svc->client_progress(r); });
    routes.add(method::get, "/metrics", [svc](const request& r) { return svc->metrics(r); });
}

http::router instrumented(std::shared_ptr<const http::router> inner,
                          std::shared_ptr<http_counters> counters) {
    http::router outer;
    for (method m : {method::get, method::post, method::put, method::patch, method::del}) {
        outer.add_prefix(m, "/", [inner, counters](const request& r) {
            auto start = std::chrono::steady_clock::now();
            response out = inner->dispatch(r);
            counters->record(r.verb(), out.status);
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
            // A HEAD answered 404 is how a client asks "do you have it" (image chunks).
            if (out.status >= 400 && !(r.verb() == method::head && out.status == 404)) {
                log::warn(
                    "http request remote={} method={} path={} status={} duration_us={} "
                    "body={:.200}",
                    r.remote_address(), http::method_name(r.verb()), r.path(), out.status, us,
                    out.body);
            } else if (spdlog::should_log(spdlog::level::debug)) {
                log::debug("http request remote={} method={} path={} status={} duration_us={}",
                           r.remote_address(), http::method_name(r.verb()), r.path(), out.status,
                           us);
            }
            return out;
        });
    }
    return outer;
}

}  // namespace shoal::api
