// The REST API, the client OS's endpoints and /metrics, on SQLite and on PostgreSQL (a
// private cluster, pg_fixture.h; skipped when not root). Most cases dispatch through the
// router as the server would; a few go over real HTTP with libcurl (the Authorization
// header as sent, the body limit's 413), and one starts shoald itself.
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/api.h"
#include "api/csv_import.h"
#include "api/json_codec.h"
#include "pg_fixture.h"
#include "store/repository.h"

namespace {

using namespace shoal;
using json = nlohmann::json;
using http::method;

// Records what the API asked of the tasks part.
class fake_tasks final : public control::task_control {
public:
    void task_changed(std::int64_t id) noexcept override {
        std::lock_guard lock(_mutex);
        changed.push_back(id);
    }
    status wake(std::int64_t host_id, const ipxe::mac_address& mac) override {
        std::lock_guard lock(_mutex);
        if (!wake_supported) {
            return error(errc::unsupported, "no wake here");
        }
        woken.emplace_back(host_id, mac.to_string());
        return ok();
    }
    void write_metrics(std::string& out) const override {
        out +=
            "# HELP shoal_fake_sessions_bytes x\n# TYPE shoal_fake_sessions_bytes gauge\n"
            "shoal_fake_sessions_bytes 42\n";
    }
    std::mutex _mutex;
    std::vector<std::int64_t> changed;
    std::vector<std::pair<std::int64_t, std::string>> woken;
    bool wake_supported = true;
};

struct reply {
    unsigned status = 0;
    json body;
    std::string text;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string field() const { return body.is_object() ? body.value("field", "") : ""; }
};

class api_test : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        auto store = test::make_test_store(GetParam(), "shoal-api");
        if (!store.skip.empty()) {
            GTEST_SKIP() << "PostgreSQL: " << store.skip;
        }
        ASSERT_TRUE(store.error.empty()) << store.error;
        _dir = store.dir;
        _url = store.url;
        store::open_options o;
        o.cheap_password_hash = true;
        auto r = store::open_repository(_url, o);
        ASSERT_TRUE(r) << r.err().describe();
        repo = std::move(*r);
        ASSERT_EQ(repo->backend(), GetParam());

        admin = make_user("root", store::user_role::admin);
        operator_ = make_user("op", store::user_role::operator_);
        viewer = make_user("eve", store::user_role::viewer);

        tasks = std::make_shared<fake_tasks>();
        counters = std::make_shared<api::http_counters>();
        http::router inner;
        api::api_deps deps;
        deps.repo = repo;
        deps.tasks = tasks;
        deps.counters = counters;
        deps.extra_metrics = [](std::string& out) {
            api::write_boot_metrics(out, dhcp::stats{.received = 7}, std::nullopt);
        };
        api::add_api_routes(inner, std::move(deps), api::api_config{});
        routes =
            api::instrumented(std::make_shared<const http::router>(std::move(inner)), counters);
    }

    void TearDown() override {
        repo.reset();
        if (!_dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(_dir, ec);
        }
    }

    std::string make_user(const std::string& name, store::user_role role) {
        store::user u;
        u.name = name;
        u.role = role;
        auto made = repo->create_user(u, "correct horse " + name);
        EXPECT_TRUE(made) << made.err().describe();
        auto t = repo->create_token(made->id, "test", std::nullopt);
        EXPECT_TRUE(t) << t.err().describe();
        return t->secret;
    }

    // Dispatches as the server does; token "" sends no Authorization header.
    reply call(method m, std::string path, const std::string& token, std::string body = {},
               std::map<std::string, std::string> headers = {}) {
        std::map<std::string, std::string> query;
        if (auto q = path.find('?'); q != std::string::npos) {
            std::string qs = path.substr(q + 1);
            path.resize(q);
            std::size_t at = 0;
            while (at <= qs.size()) {
                auto amp = qs.find('&', at);
                std::string kv =
                    qs.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
                auto eq = kv.find('=');
                query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
                if (amp == std::string::npos) {
                    break;
                }
                at = amp + 1;
            }
        }
        if (!token.empty()) {
            headers["Authorization"] = "Bearer " + token;
        }
        http::request::source src;
        src.lookup = [&](bool is_header, const char* name) -> std::optional<std::string_view> {
            auto& m2 = is_header ? headers : query;
            auto it = m2.find(name);
            if (it == m2.end()) {
                return std::nullopt;
            }
            return std::string_view(it->second);
        };
        http::request req(m, path, body, "127.0.0.1", std::move(src));
        http::response out = routes.dispatch(req);
        reply r;
        r.status = out.status;
        r.text = out.body;
        r.headers = out.headers;
        if (out.content_type == "application/json") {
            r.body = json::parse(out.body, nullptr, false);
            EXPECT_FALSE(r.body.is_discarded()) << out.body;
        }
        return r;
    }
    reply get(const std::string& path, const std::string& token) {
        return call(method::get, path, token);
    }
    reply post(const std::string& path, const std::string& token, const json& body) {
        return call(method::post, path, token, body.dump());
    }
    reply patch(const std::string& path, const std::string& token, const json& body) {
        return call(method::patch, path, token, body.dump());
    }
    reply del(const std::string& path, const std::string& token) {
        return call(method::del, path, token);
    }

    std::int64_t make_host(const std::string& mac, const std::string& name) {
        auto r = post("/api/v1/hosts", admin, {{"mac", mac}, {"name", name}});
        EXPECT_EQ(r.status, 201u) << r.text;
        return r.body.value("id", std::int64_t{0});
    }
    std::int64_t make_image(const std::string& name) {
        auto r = post("/api/v1/images", admin, {{"name", name}});
        EXPECT_EQ(r.status, 201u) << r.text;
        return r.body.value("id", std::int64_t{0});
    }
    std::int64_t host_count() {
        auto n = repo->count_hosts({});
        EXPECT_TRUE(n);
        return n ? *n : -1;
    }

    std::shared_ptr<store::repository> repo;
    std::shared_ptr<fake_tasks> tasks;
    std::shared_ptr<api::http_counters> counters;
    http::router routes;
    std::string admin, operator_, viewer;
    std::string _dir;
    std::string _url;
};

// ---- authentication ----

TEST_P(api_test, a_missing_or_wrong_token_is_401_and_a_viewer_writing_403) {
    auto none = get("/api/v1/hosts", "");
    EXPECT_EQ(none.status, 401u);
    EXPECT_NE(none.body["error"].get<std::string>().find("Bearer"), std::string::npos);
    bool challenge = false;
    for (const auto& [k, v] : none.headers) {
        challenge = challenge || (k == "WWW-Authenticate" && v.starts_with("Bearer"));
    }
    EXPECT_TRUE(challenge);
    EXPECT_EQ(get("/api/v1/hosts", std::string(64, 'a')).status, 401u);
    EXPECT_EQ(
        call(method::get, "/api/v1/hosts", "", "", {{"Authorization", "Basic cm9vdDp4"}}).status,
        401u);
    EXPECT_EQ(get("/api/v1/tasks", viewer).status, 200u);
    auto w = post("/api/v1/hosts", viewer, {{"mac", "00:12:3F:C4:57:0C"}, {"name", "pc1"}});
    EXPECT_EQ(w.status, 403u);
    EXPECT_EQ(host_count(), 0);
    EXPECT_EQ(post("/api/v1/users", operator_, {{"name", "x"}, {"password", "12345678"}}).status,
              403u);
    // The OpenAPI document and login need no token.
    auto doc = get("/api/v1/openapi.json", "");
    ASSERT_EQ(doc.status, 200u);
    EXPECT_EQ(doc.body["openapi"], "3.0.3");
    for (const char* p :
         {"/hosts", "/hosts/{id}", "/hosts/import", "/hosts/by-mac/{mac}", "/tasks/{id}/cancel",
          "/groups/{id}/tasks", "/hosts/{id}/wake", "/login", "/storage-nodes", "/storage-groups",
          "/sessions", "/schedules", "/users", "/tokens"}) {
        EXPECT_TRUE(doc.body["paths"].contains(p)) << p;
    }
}

TEST_P(api_test, login_gives_a_token_that_works_and_refuses_a_wrong_password) {
    auto bad = post("/api/v1/login", "", {{"user", "op"}, {"password", "nope nope"}});
    EXPECT_EQ(bad.status, 401u);
    auto unknown = post("/api/v1/login", "", {{"user", "nobody"}, {"password", "nope nope"}});
    EXPECT_EQ(unknown.status, 401u);
    EXPECT_EQ(unknown.body["error"], bad.body["error"]);  // says nothing of who exists
    auto missing = post("/api/v1/login", "", {{"user", "op"}});
    EXPECT_EQ(missing.status, 400u);
    EXPECT_EQ(missing.field(), "password");
    auto good = post("/api/v1/login", "", {{"user", "op"}, {"password", "correct horse op"}});
    ASSERT_EQ(good.status, 200u) << good.text;
    std::string token = good.body["token"];
    EXPECT_EQ(token.size(), 64u);
    EXPECT_EQ(good.body["user"]["role"], "operator");
    EXPECT_EQ(get("/api/v1/hosts", token).status, 200u);
}

TEST_P(api_test, tokens_are_made_listed_and_revoked) {
    auto made = post("/api/v1/tokens", operator_, {{"name", "ci"}});
    ASSERT_EQ(made.status, 201u) << made.text;
    std::string secret = made.body["token"];
    std::int64_t id = made.body["id"];
    EXPECT_EQ(get("/api/v1/hosts", secret).status, 200u);
    auto mine = get("/api/v1/tokens", operator_);
    ASSERT_EQ(mine.status, 200u);
    EXPECT_EQ(mine.body["items"].size(), 2u);  // the fixture's and this one
    for (const auto& t : mine.body["items"]) {
        EXPECT_FALSE(t.contains("token"));  // the secret is shown once only
    }
    EXPECT_EQ(get("/api/v1/tokens?user_id=1", operator_).status, 403u);
    auto past = post("/api/v1/tokens", operator_,
                     {{"name", "old"}, {"expires_at", "2001-01-01T00:00:00Z"}});
    EXPECT_EQ(past.status, 400u);
    EXPECT_EQ(past.field(), "expires_at");
    auto badtime = post("/api/v1/tokens", operator_, {{"name", "old"}, {"expires_at", "soon"}});
    EXPECT_EQ(badtime.field(), "expires_at");
    EXPECT_EQ(del(fmt::format("/api/v1/tokens/{}", id), operator_).status, 204u);
    EXPECT_EQ(get("/api/v1/hosts", secret).status, 401u);
}

// ---- hosts ----

TEST_P(api_test, hosts_round_trip_by_id_and_by_mac) {
    auto made = post("/api/v1/hosts", operator_,
                     {{"mac", "00-12-3F-C4-57-0C"},
                      {"name", "pc1"},
                      {"description", "row 1"},
                      {"inventory", {{"cpu", "i5"}}}});
    ASSERT_EQ(made.status, 201u) << made.text;
    EXPECT_EQ(made.body["mac"], "00:12:3f:c4:57:0c");
    std::int64_t id = made.body["id"];
    auto one = get(fmt::format("/api/v1/hosts/{}", id), viewer);
    EXPECT_EQ(one.body["name"], "pc1");
    EXPECT_EQ(one.body["inventory"]["cpu"], "i5");
    auto bymac = get("/api/v1/hosts/by-mac/00:12:3F:C4:57:0C", viewer);
    ASSERT_EQ(bymac.status, 200u);
    EXPECT_EQ(bymac.body["id"], id);
    auto changed = patch(fmt::format("/api/v1/hosts/{}", id), operator_,
                         {{"description", "row 2"}, {"id", 999}});  // id is read-only
    ASSERT_EQ(changed.status, 200u) << changed.text;
    EXPECT_EQ(changed.body["description"], "row 2");
    EXPECT_EQ(changed.body["name"], "pc1");
    EXPECT_EQ(changed.body["id"], id);
    auto bymac_patch = patch("/api/v1/hosts/by-mac/00123fc4570c", operator_, {{"name", "pc9"}});
    EXPECT_EQ(bymac_patch.body["name"], "pc9");
    make_host("00:12:3F:C4:57:0D", "pc2");
    auto list = get("/api/v1/hosts?limit=1&offset=1", viewer);
    ASSERT_EQ(list.status, 200u);
    EXPECT_EQ(list.body["total"], 2);
    ASSERT_EQ(list.body["items"].size(), 1u);
    EXPECT_EQ(list.body["items"][0]["name"], "pc2");
    EXPECT_EQ(del(fmt::format("/api/v1/hosts/{}", id), operator_).status, 204u);
    EXPECT_EQ(get(fmt::format("/api/v1/hosts/{}", id), viewer).status, 404u);
    EXPECT_EQ(get("/api/v1/hosts/by-mac/00:12:3F:C4:57:0C", viewer).status, 404u);
}

TEST_P(api_test, every_bad_host_input_is_a_400_or_409_naming_the_field) {
    make_host("00:12:3F:C4:57:0C", "pc1");
    struct bad_case {
        json body;
        unsigned status;
        const char* field;
    };
    const bad_case cases[] = {
        {{{"mac", "00:12:3F:C4:57"}, {"name", "pc2"}}, 400, "mac"},
        {{{"mac", "zz:12:3F:C4:57:0C"}, {"name", "pc2"}}, 400, "mac"},
        {{{"mac", "01:00:5e:00:00:01"}, {"name", "pc2"}}, 400, "mac"},  // multicast
        {{{"mac", 12}, {"name", "pc2"}}, 400, "mac"},
        {{{"name", "pc2"}}, 400, "mac"},
        {{{"mac", "00:12:3F:C4:57:0D"}}, 400, "name"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "no spaces"}}, 400, "name"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", std::string(64, 'a')}}, 400, "name"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "pc2"}, {"colour", "red"}}, 400, "colour"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "pc2"}, {"inventory", "x"}}, 400, "inventory"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "pc2"}, {"image_id", 999}}, 400, "image_id"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "pc2"}, {"image_id", -1}}, 400, "image_id"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "pc2"}, {"pending", "yes"}}, 400, "pending"},
        {{{"mac", "00:12:3f:c4:57:0c"}, {"name", "pc2"}}, 409, "mac"},
        {{{"mac", "00:12:3F:C4:57:0D"}, {"name", "pc1"}}, 409, "name"},
    };
    for (const auto& c : cases) {
        auto r = post("/api/v1/hosts", operator_, c.body);
        EXPECT_EQ(r.status, c.status) << c.body.dump() << " -> " << r.text;
        EXPECT_EQ(r.field(), c.field) << c.body.dump() << " -> " << r.text;
        EXPECT_FALSE(r.body["error"].get<std::string>().empty());
    }
    EXPECT_EQ(host_count(), 1);
    auto notjson = call(method::post, "/api/v1/hosts", operator_, "{\"mac\": ");
    EXPECT_EQ(notjson.status, 400u);
    EXPECT_EQ(notjson.field(), "body");
    auto array = call(method::post, "/api/v1/hosts", operator_, "[]");
    EXPECT_EQ(array.field(), "body");
    EXPECT_EQ(get("/api/v1/hosts?limit=0", viewer).field(), "limit");
    EXPECT_EQ(get("/api/v1/hosts?limit=5000", viewer).field(), "limit");
    EXPECT_EQ(get("/api/v1/hosts?offset=-1", viewer).field(), "offset");
    EXPECT_EQ(get("/api/v1/hosts?pending=maybe", viewer).field(), "pending");
    EXPECT_EQ(get("/api/v1/hosts/abc", viewer).status, 404u);
    EXPECT_EQ(get("/api/v1/hosts/999", viewer).status, 404u);
    EXPECT_EQ(get("/api/v1/hosts/by-mac/nonsense", viewer).status, 400u);
    EXPECT_EQ(get("/api/v1/nothing", viewer).status, 404u);
    EXPECT_EQ(patch("/api/v1/hosts/999", operator_, {{"name", "x"}}).status, 404u);
}

// ---- the other resources, alike ----

TEST_P(api_test, every_resource_lists_creates_gets_patches_and_deletes) {
    std::int64_t host = make_host("00:12:3F:C4:57:0C", "pc1");
    std::int64_t image = make_image("win11");
    auto sg = post("/api/v1/storage-groups", admin, {{"name", "site-a"}});
    ASSERT_EQ(sg.status, 201u) << sg.text;
    struct resource_case {
        std::string path;
        json create;
        json change;  // a PATCH
        std::string changed_key;
        json bad;               // a create that fails ...
        std::string bad_field;  // ... naming this field
    };
    std::vector<resource_case> cases = {
        {"groups",
         {{"name", "room204"}, {"hosts", {host}}},
         {{"description", "lab"}},
         "description",
         {{"name", "room 204"}},
         "name"},
        {"images",
         {{"name", "win10"}, {"kind", "raw"}, {"size_bytes", 1000}},
         {{"description", "Windows 10"}},
         "description",
         {{"name", "x"}, {"kind", "zip"}},
         "kind"},
        {"storage-nodes",
         {{"name", "node1"},
          {"url", "http://10.0.0.2"},
          {"path", "/srv/images"},
          {"storage_group_id", sg.body["id"]}},
         {{"enabled", false}},
         "enabled",
         {{"name", "node2"}, {"url", "ftp://x"}, {"path", "/srv"}},
         "url"},
        {"storage-groups",
         {{"name", "site-b"}},
         {{"description", "b"}},
         "description",
         {{"description", "no name"}},
         "name"},
        {"schedules",
         {{"name", "nightly"},
          {"kind", "cron"},
          {"cron", "0 19 * * 1-5"},
          {"task",
           {{"kind", "deploy"}, {"image_id", image}, {"shutdown", "reboot"}, {"wol", true}}},
          {"hosts", {host}}},
         {{"enabled", false}},
         "enabled",
         {{"name", "bad"},
          {"kind", "cron"},
          {"cron", "61 * * * *"},
          {"task", {{"kind", "inventory"}}}},
         "cron"},
        {"users",
         {{"name", "tech"}, {"password", "long enough"}, {"role", "operator"}},
         {{"role", "viewer"}},
         "role",
         {{"name", "tech2"}, {"password", "short"}},
         "password"},
        {"sessions",
         {{"image_id", image}, {"group", "239.77.0.1"}, {"port", 9000}, {"receivers_min", 2}},
         {{"state", "cancelled"}},
         "state",
         {{"image_id", image}, {"group", "10.0.0.1"}, {"port", 9000}},
         "group"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.path);
        std::string base = "/api/v1/" + c.path;
        auto made = post(base, admin, c.create);
        ASSERT_EQ(made.status, 201u) << made.text;
        std::int64_t id = made.body["id"];
        std::string one = fmt::format("{}/{}", base, id);
        auto got = get(one, viewer);
        ASSERT_EQ(got.status, 200u) << got.text;
        for (const auto& [k, v] : c.create.items()) {
            if (k != "password") {
                EXPECT_EQ(got.body[k], v) << k;
            }
        }
        EXPECT_FALSE(got.body.contains("password"));
        auto changed = patch(one, admin, c.change);
        ASSERT_EQ(changed.status, 200u) << changed.text;
        EXPECT_EQ(changed.body[c.changed_key], c.change[c.changed_key]);
        EXPECT_EQ(get(one, viewer).body[c.changed_key], c.change[c.changed_key]);
        auto list = get(base, viewer);
        ASSERT_EQ(list.status, 200u);
        bool listed = false;
        for (const auto& item : list.body["items"]) {
            listed = listed || item["id"] == id;
        }
        EXPECT_TRUE(listed);
        auto bad = post(base, admin, c.bad);
        EXPECT_EQ(bad.status, 400u) << bad.text;
        EXPECT_EQ(bad.field(), c.bad_field) << bad.text;
        auto unknown = post(base, admin, json{{"bogus_field", 1}});
        EXPECT_EQ(unknown.status, 400u);
        EXPECT_EQ(unknown.field(), "bogus_field");
        EXPECT_EQ(patch(one, viewer, c.change).status, 403u);
        EXPECT_EQ(del(one, viewer).status, 403u);
        EXPECT_EQ(del(one, admin).status, 204u) << c.path;
        EXPECT_EQ(get(one, viewer).status, 404u);
        EXPECT_EQ(del(one, admin).status, 404u);
    }
    // Duplicates are conflicts naming the field.
    ASSERT_EQ(post("/api/v1/groups", admin, {{"name", "g"}}).status, 201u);
    auto dup = post("/api/v1/groups", admin, {{"name", "g"}});
    EXPECT_EQ(dup.status, 409u);
    EXPECT_EQ(dup.field(), "name");
    // A protected image is not deleted.
    ASSERT_EQ(patch(fmt::format("/api/v1/images/{}", image), admin, {{"protected", true}}).status,
              200u);
    EXPECT_EQ(del(fmt::format("/api/v1/images/{}", image), admin).status, 409u);
    // Nobody deletes themselves.
    auto me = get("/api/v1/users?limit=1", admin);
    EXPECT_EQ(
        del(fmt::format("/api/v1/users/{}", me.body["items"][0]["id"].get<std::int64_t>()), admin)
            .status,
        409u);
}

// ---- tasks ----

TEST_P(api_test, tasks_one_open_per_host_cancel_and_history) {
    std::int64_t host = make_host("00:12:3F:C4:57:0C", "pc1");
    std::int64_t image = make_image("win11");
    auto noimage = post("/api/v1/tasks", operator_, {{"kind", "deploy"}, {"host_id", host}});
    EXPECT_EQ(noimage.status, 400u);
    EXPECT_EQ(noimage.field(), "image_id");
    auto badkind = post("/api/v1/tasks", operator_, {{"kind", "reinstall"}, {"host_id", host}});
    EXPECT_EQ(badkind.field(), "kind");
    auto nohost = post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", 999}});
    EXPECT_EQ(nohost.status, 400u);
    EXPECT_EQ(nohost.field(), "host_id");
    auto made = post(
        "/api/v1/tasks", operator_,
        {{"kind", "deploy"}, {"host_id", host}, {"image_id", image}, {"shutdown", "poweroff"}});
    ASSERT_EQ(made.status, 201u) << made.text;
    std::int64_t id = made.body["id"];
    EXPECT_EQ(made.body["state"], "queued");
    EXPECT_EQ(made.body["shutdown"], "poweroff");
    EXPECT_EQ(made.body["created_by"], 2);  // the operator
    EXPECT_EQ(tasks->changed, std::vector<std::int64_t>{id});
    auto second = post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", host}});
    EXPECT_EQ(second.status, 409u);
    EXPECT_EQ(second.field(), "host_id");
    auto queued = get("/api/v1/tasks?state=queued", viewer);
    EXPECT_EQ(queued.body["total"], 1);
    EXPECT_EQ(get("/api/v1/tasks?state=sleeping", viewer).field(), "state");
    EXPECT_EQ(get("/api/v1/tasks?host_id=x", viewer).field(), "host_id");
    EXPECT_EQ(
        patch(fmt::format("/api/v1/tasks/{}", id), operator_, {{"kind", "wipe_full"}}).field(),
        "kind");
    EXPECT_EQ(post(fmt::format("/api/v1/tasks/{}/cancel", id), viewer, json::object()).status,
              403u);
    auto cancelled = post(fmt::format("/api/v1/tasks/{}/cancel", id), operator_, json::object());
    ASSERT_EQ(cancelled.status, 200u) << cancelled.text;
    EXPECT_EQ(cancelled.body["state"], "cancelled");
    EXPECT_FALSE(cancelled.body["finished_at"].is_null());
    EXPECT_EQ(tasks->changed.size(), 2u);
    auto again = post(fmt::format("/api/v1/tasks/{}/cancel", id), operator_, json::object());
    EXPECT_EQ(again.status, 409u);
    EXPECT_EQ(post("/api/v1/tasks/999/cancel", operator_, json::object()).status, 404u);
    auto events = get(fmt::format("/api/v1/tasks/{}/events", id), viewer);
    ASSERT_EQ(events.status, 200u);
    ASSERT_EQ(events.body["items"].size(), 2u);
    EXPECT_EQ(events.body["items"][1]["from"], "queued");
    EXPECT_EQ(events.body["items"][1]["to"], "cancelled");
    EXPECT_EQ(events.body["items"][1]["message"], "cancelled by op");
    // The host is free again.
    EXPECT_EQ(post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", host}}).status,
              201u);
}

// The agent's disk rule (docs/agent.md): stored with the task, shown, checked.
TEST_P(api_test, a_task_carries_its_disk_rule) {
    std::int64_t host = make_host("00:12:3F:C4:57:0D", "pc2");
    for (const char* bad : {"a b", "../../dev/sda", "$(reboot)", "x\ny"}) {
        auto r = post("/api/v1/tasks", operator_,
                      {{"kind", "wipe_fast"}, {"host_id", host}, {"disk", bad}});
        EXPECT_EQ(r.status, 400u) << bad;
        EXPECT_EQ(r.field(), "disk") << bad;
    }
    auto made = post("/api/v1/tasks", operator_,
                     {{"kind", "wipe_fast"}, {"host_id", host}, {"disk", "serial:S4EV-12_3"}});
    ASSERT_EQ(made.status, 201u) << made.text;
    EXPECT_EQ(made.body["disk"], "serial:S4EV-12_3");
    auto read = get(fmt::format("/api/v1/tasks/{}", made.body["id"].get<std::int64_t>()), viewer);
    EXPECT_EQ(read.body["disk"], "serial:S4EV-12_3");
    auto plain = post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", make_host("00:12:3F:C4:57:0E", "pc3")}});
    ASSERT_EQ(plain.status, 201u) << plain.text;
    EXPECT_EQ(plain.body["disk"], "");  // auto
}

TEST_P(api_test, a_group_task_makes_one_per_host_or_none) {
    std::int64_t a = make_host("00:12:3F:C4:57:0A", "pc-a");
    std::int64_t b = make_host("00:12:3F:C4:57:0B", "pc-b");
    std::int64_t image = make_image("win11");
    auto g = post("/api/v1/groups", admin, {{"name", "room204"}, {"hosts", {a, b}}});
    ASSERT_EQ(g.status, 201u);
    std::string path = fmt::format("/api/v1/groups/{}/tasks", g.body["id"].get<std::int64_t>());
    auto noimage = post(path, operator_, {{"kind", "multicast"}});
    EXPECT_EQ(noimage.field(), "image_id");
    // b is busy: nothing is made for a either.
    ASSERT_EQ(post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", b}}).status,
              201u);
    auto busy = post(path, operator_, {{"kind", "multicast"}, {"image_id", image}});
    EXPECT_EQ(busy.status, 409u);
    EXPECT_EQ(busy.field(), "host_id");
    EXPECT_EQ(get("/api/v1/tasks", viewer).body["total"], 1);
    auto open = repo->open_task_for_host(b);
    ASSERT_TRUE(open && *open);
    ASSERT_TRUE(repo->transition_task((*open)->id, store::task_state::cancelled));
    auto made = post(path, operator_, {{"kind", "multicast"}, {"image_id", image}, {"wol", true}});
    ASSERT_EQ(made.status, 201u) << made.text;
    ASSERT_EQ(made.body["items"].size(), 2u);
    std::set<std::int64_t> hosts;
    for (const auto& t : made.body["items"]) {
        hosts.insert(t["host_id"].get<std::int64_t>());
        EXPECT_EQ(t["kind"], "multicast");
        EXPECT_EQ(t["wol"], true);
    }
    EXPECT_EQ(hosts, (std::set<std::int64_t>{a, b}));
    EXPECT_EQ(post("/api/v1/groups/999/tasks", operator_, {{"kind", "inventory"}}).status, 404u);
}

TEST_P(api_test, wake_reaches_the_tasks_part_or_says_it_cannot) {
    std::int64_t host = make_host("00:12:3F:C4:57:0C", "pc1");
    auto r = post(fmt::format("/api/v1/hosts/{}/wake", host), operator_, json::object());
    ASSERT_EQ(r.status, 202u) << r.text;
    ASSERT_EQ(tasks->woken.size(), 1u);
    EXPECT_EQ(tasks->woken[0], std::make_pair(host, std::string("00:12:3f:c4:57:0c")));
    EXPECT_EQ(post(fmt::format("/api/v1/hosts/{}/wake", host), viewer, json::object()).status,
              403u);
    EXPECT_EQ(post("/api/v1/hosts/999/wake", operator_, json::object()).status, 404u);
    tasks->wake_supported = false;
    EXPECT_EQ(post(fmt::format("/api/v1/hosts/{}/wake", host), operator_, json::object()).status,
              501u);
}

// ---- CSV import ----

TEST_P(api_test, csv_import_stores_every_host_or_none_and_names_bad_lines) {
    std::int64_t image = make_image("win11");
    std::string good =
        "\"MAC\",\"Hostname\",\"\",\"Description\",\"OS\",\"Image\"\r\n"
        "\"00:12:3F:C4:57:0C\",\"pc1\",\"\",\"front row, left\",\"9\",\"win11\"\r\n"
        "\r\n"
        "\"00-12-3F-C4-57-0D\",\"pc2\",\"\",\"says \"\"hi\"\"\",\"9\",\"\"\r\n"
        "00123fc4570e,pc3\r\n";
    auto r =
        call(method::post, "/api/v1/hosts/import", operator_, good, {{"Content-Type", "text/csv"}});
    ASSERT_EQ(r.status, 201u) << r.text;
    EXPECT_EQ(r.body["imported"], 3);
    auto pc1 = repo->get_host_by_name("pc1");
    ASSERT_TRUE(pc1);
    EXPECT_EQ(pc1->mac, "00:12:3f:c4:57:0c");
    EXPECT_EQ(pc1->description, "front row, left");
    EXPECT_EQ(pc1->image_id, image);
    auto pc2 = repo->get_host_by_name("pc2");
    ASSERT_TRUE(pc2);
    EXPECT_EQ(pc2->description, "says \"hi\"");
    EXPECT_FALSE(pc2->image_id);

    // Lines 2, 4 and 5 are bad, 1 and 3 fine: a 400 naming each, nothing stored.
    std::string bad =
        "\"00:12:3F:C4:57:1A\",\"pc10\",\"\",\"\",\"\",\"\"\n"
        "\"00:12:3F:C4:57\",\"pc11\",\"\",\"\",\"\",\"\"\n"
        "\"00:12:3F:C4:57:1C\",\"pc12\",\"\",\"\",\"\",\"win11\"\n"
        "\"00:12:3F:C4:57:1D\",\"pc 13\",\"\",\"\",\"\",\"\"\n"
        "\"00:12:3F:C4:57:1E\",\"pc14\",\"\",\"\",\"\",\"nosuch\"\n";
    std::int64_t before = host_count();
    auto e = call(method::post, "/api/v1/hosts/import", operator_, bad);
    ASSERT_EQ(e.status, 400u) << e.text;
    ASSERT_EQ(e.body["lines"].size(), 3u) << e.text;
    EXPECT_EQ(e.body["lines"][0]["line"], 2);
    EXPECT_EQ(e.body["lines"][0]["field"], "mac");
    EXPECT_EQ(e.body["lines"][1]["line"], 4);
    EXPECT_EQ(e.body["lines"][1]["field"], "name");
    EXPECT_EQ(e.body["lines"][2]["line"], 5);
    EXPECT_EQ(e.body["lines"][2]["field"], "image");
    EXPECT_EQ(host_count(), before);

    // A MAC the store already has: 409 naming the line, nothing stored.
    std::string clash =
        "\"00:12:3F:C4:57:2A\",\"pc20\"\n"
        "\"00:12:3f:c4:57:0c\",\"pc21\"\n";
    auto c = call(method::post, "/api/v1/hosts/import", operator_, clash);
    EXPECT_EQ(c.status, 409u) << c.text;
    ASSERT_EQ(c.body["lines"].size(), 1u);
    EXPECT_EQ(c.body["lines"][0]["line"], 2);
    EXPECT_EQ(c.body["lines"][0]["field"], "mac");
    EXPECT_EQ(host_count(), before);

    auto malformed = call(method::post, "/api/v1/hosts/import", operator_,
                          "\"00:12:3F:C4:57:3A\",\"pc30\"\n\"00:12:3F:C4:57:3B\",\"pc\"31\"\n");
    EXPECT_EQ(malformed.status, 400u);
    EXPECT_EQ(malformed.body["lines"][0]["line"], 2) << malformed.text;
    EXPECT_EQ(call(method::post, "/api/v1/hosts/import", operator_, "").status, 400u);
    EXPECT_EQ(call(method::post, "/api/v1/hosts/import", viewer, good).status, 403u);
    EXPECT_EQ(host_count(), before);
}

// ---- the client OS ----

TEST_P(api_test, client_register_makes_a_pending_host_and_never_renames_one) {
    auto r = post("/client/register", "",
                  {{"mac", "00:12:3F:C4:57:0C"}, {"inventory", {{"memory_bytes", 8}}}});
    ASSERT_EQ(r.status, 201u) << r.text;
    EXPECT_EQ(r.body["pending"], true);
    std::int64_t id = r.body["id"];
    auto h = repo->get_host(id);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->name, "pending-00123fc4570c");
    EXPECT_TRUE(h->last_seen_at);
    auto again = post("/client/register", "",
                      {{"mac", "00123fc4570c"}, {"name", "evil"}, {"inventory", {{"cpu", "x"}}}});
    ASSERT_EQ(again.status, 200u) << again.text;
    EXPECT_EQ(again.body["id"], id);
    h = repo->get_host(id);
    EXPECT_EQ(h->name, "pending-00123fc4570c");
    EXPECT_EQ(json::parse(h->inventory)["cpu"], "x");
    EXPECT_EQ(post("/client/register", "", {{"mac", "nope"}}).field(), "mac");
    EXPECT_EQ(post("/client/register", "", {{"name", "x"}}).field(), "mac");
    EXPECT_EQ(
        post("/client/register", "", {{"mac", "00:12:3F:C4:57:0D"}, {"inventory", 1}}).field(),
        "inventory");
    EXPECT_EQ(
        post("/client/register", "", {{"mac", "00:12:3F:C4:57:0D"}, {"role", "admin"}}).field(),
        "role");
}

TEST_P(api_test, a_task_key_reaches_its_own_task_only) {
    std::int64_t host = make_host("00:12:3F:C4:57:0C", "pc1");
    std::int64_t other = make_host("00:12:3F:C4:57:0D", "pc2");
    std::int64_t image = make_image("win11");
    auto t = post("/api/v1/tasks", operator_,
                  {{"kind", "deploy"}, {"host_id", host}, {"image_id", image}});
    auto t2 = post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", other}});
    std::int64_t id = t.body["id"];
    std::int64_t id2 = t2.body["id"];
    auto key = repo->issue_task_key(id);
    ASSERT_TRUE(key);
    auto no = call(method::get, "/client/task", "");
    EXPECT_EQ(no.status, 403u);
    auto wrong = call(method::get, "/client/task", "", "", {{"X-Shoal-Task-Key", "00ff"}});
    EXPECT_EQ(wrong.status, 403u);
    auto mine = call(method::get, "/client/task", "", "", {{"X-Shoal-Task-Key", *key}});
    ASSERT_EQ(mine.status, 200u) << mine.text;
    EXPECT_EQ(mine.body["task"]["id"], id);
    EXPECT_EQ(mine.body["host"]["mac"], "00:12:3f:c4:57:0c");
    EXPECT_EQ(mine.body["image"]["name"], "win11");
    // An API token is no task key, and a task key is no API token.
    EXPECT_EQ(call(method::get, "/client/task", "", "", {{"X-Shoal-Task-Key", admin}}).status,
              403u);
    EXPECT_EQ(get("/api/v1/hosts", *key).status, 401u);

    auto progress = [&](const json& body) {
        return call(method::post, "/client/progress", "", body.dump(),
                    {{"X-Shoal-Task-Key", *key}});
    };
    auto other_task = progress({{"task_id", id2}, {"percent", 50}});
    EXPECT_EQ(other_task.status, 403u);
    EXPECT_EQ(repo->get_task(id2)->progress.percent, 0);
    auto bad = progress({{"percent", 150}});
    EXPECT_EQ(bad.status, 400u);
    EXPECT_EQ(bad.field(), "percent");
    EXPECT_EQ(progress({{"state", "cancelled"}}).status, 403u);
    auto p = progress({{"state", "in_progress"},
                       {"percent", 42.5},
                       {"bytes_done", 1000},
                       {"bytes_total", 4000},
                       {"rate_Bps", 500},
                       {"message", "disk 1"}});
    ASSERT_EQ(p.status, 200u) << p.text;
    auto stored = repo->get_task(id);
    EXPECT_EQ(stored->state, store::task_state::in_progress);
    EXPECT_DOUBLE_EQ(stored->progress.percent, 42.5);
    EXPECT_EQ(stored->progress.bytes_done, 1000);
    EXPECT_EQ(stored->progress.message, "disk 1");
    auto done = progress({{"state", "complete"}, {"percent", 100}, {"bytes_done", 4000}});
    ASSERT_EQ(done.status, 200u) << done.text;
    EXPECT_EQ(repo->get_task(id)->state, store::task_state::complete);
    EXPECT_EQ(repo->get_task(id)->progress.bytes_done, 4000);
    // A finished task takes nothing more.
    EXPECT_EQ(progress({{"percent", 1}}).status, 403u);
    EXPECT_EQ(call(method::get, "/client/task", "", "", {{"X-Shoal-Task-Key", *key}}).status, 403u);
}

// ---- /metrics ----

TEST_P(api_test, metrics_count_tasks_hosts_requests_and_boot_services) {
    std::int64_t host = make_host("00:12:3F:C4:57:0C", "pc1");
    make_host("00:12:3F:C4:57:0D", "pc2");
    ASSERT_EQ(post("/api/v1/tasks", operator_, {{"kind", "inventory"}, {"host_id", host}}).status,
              201u);
    get("/api/v1/hosts", "");  // a 401
    auto m = call(method::get, "/metrics", "");
    ASSERT_EQ(m.status, 200u);
    const std::string& t = m.text;
    EXPECT_NE(t.find("# TYPE shoal_tasks gauge\n"), std::string::npos) << t;
    EXPECT_NE(t.find("shoal_tasks{state=\"queued\"} 1\n"), std::string::npos) << t;
    EXPECT_NE(t.find("shoal_tasks{state=\"complete\"} 0\n"), std::string::npos) << t;
    EXPECT_NE(t.find("shoal_sessions{state=\"waiting\"} 0\n"), std::string::npos) << t;
    EXPECT_NE(t.find("shoal_hosts{pending=\"false\"} 2\n"), std::string::npos) << t;
    EXPECT_NE(t.find("shoal_http_requests_total{method=\"POST\",code=\"201\"} 3\n"),
              std::string::npos)
        << t;
    EXPECT_NE(t.find("shoal_http_requests_total{method=\"GET\",code=\"401\"} 1\n"),
              std::string::npos)
        << t;
    EXPECT_NE(t.find("shoal_dhcp_messages_total{kind=\"received\"} 7\n"), std::string::npos) << t;
    EXPECT_NE(t.find("shoal_fake_sessions_bytes 42\n"), std::string::npos) << t;
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }
INSTANTIATE_TEST_SUITE_P(backends, api_test, ::testing::Values("sqlite", "postgresql"),
                         backend_name);

// ---- the CSV parser alone ----

TEST(csv, line_numbers_follow_quoted_newlines_blank_lines_and_a_bom) {
    std::string text =
        "\xEF\xBB\xBF"
        "MAC,Hostname\n"
        "\n"
        "\"00:12:3F:C4:57:0C\",\"pc1\",\"\",\"two\nlines\"\n"
        "\"00:12:3F:C4:57:0D\",\"pc2\"\n"
        "\"00:12:3F:C4:57:0D\",\"pc3\"\n";
    auto r = api::parse_fog_hosts_csv(text);
    ASSERT_EQ(r.hosts.size(), 2u);
    EXPECT_EQ(r.hosts[0].line, 3u);
    EXPECT_EQ(r.hosts[0].description, "two\nlines");
    EXPECT_EQ(r.hosts[1].line, 5u);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].line, 6u);
    EXPECT_EQ(r.errors[0].field, "mac");
    EXPECT_NE(r.errors[0].message.find("line 5"), std::string::npos) << r.errors[0].message;
}

TEST(csv, malformed_and_short_lines_and_unclosed_quotes_are_errors) {
    auto r = api::parse_fog_hosts_csv(
        "\"00:12:3F:C4:57:0C\"\n"          // 1: one column
        "\"00:12:3F:C4:57:0D\",pc\"2\n"    // 2: a quote inside an unquoted field
        "\"00:12:3F:C4:57:0E\",\"pc3\"\n"  // 3: good
        "\"00:12:3F:C4:57:0F\",\"pc4\n");  // 4: never closed
    ASSERT_EQ(r.hosts.size(), 1u);
    EXPECT_EQ(r.hosts[0].name, "pc3");
    ASSERT_EQ(r.errors.size(), 3u);
    EXPECT_EQ(r.errors[0].line, 1u);
    EXPECT_EQ(r.errors[1].line, 2u);
    EXPECT_EQ(r.errors[2].line, 4u);
    EXPECT_FALSE(api::parse_fog_hosts_csv("").errors.empty());
    EXPECT_FALSE(api::parse_fog_hosts_csv("\n\n").errors.empty());
    api::csv_limits small;
    small.hosts_max = 1;
    auto big = api::parse_fog_hosts_csv("001122334455,a\n001122334456,b\n", small);
    ASSERT_FALSE(big.errors.empty());
    EXPECT_NE(big.errors.back().message.find("more than 1 hosts"), std::string::npos);
}

TEST(auth, bearer_tokens_parse_strictly) {
    EXPECT_EQ(api::bearer_token("Bearer abc"), "abc");
    EXPECT_EQ(api::bearer_token("bearer  abc "), "abc");
    EXPECT_EQ(api::bearer_token("Basic abc"), "");
    EXPECT_EQ(api::bearer_token("Bearer "), "");
    EXPECT_EQ(api::bearer_token("Bearer a b"), "");
    EXPECT_EQ(api::bearer_token("Bearer " + std::string(300, 'a')), "");
}

TEST(time, rfc3339_round_trips_and_refuses_non_dates) {
    auto t = api::parse_time("2026-11-24T19:00:00Z", "at");
    ASSERT_TRUE(t);
    EXPECT_EQ(api::format_time(*t), "2026-11-24T19:00:00Z");
    EXPECT_EQ(*api::parse_time("2026-11-24T20:00:00+01:00", "at"), *t);
    EXPECT_EQ(*api::parse_time("2026-11-24T19:00:00.250Z", "at"), *t);
    for (const char* bad : {"2026-02-31T00:00:00Z", "2026-11-24 19:00", "tomorrow",
                            "2026-11-24T19:00:00", "2026-13-01T00:00:00Z"}) {
        auto b = api::parse_time(bad, "at");
        ASSERT_FALSE(b) << bad;
        EXPECT_EQ(store::error_field(b.err()), "at");
    }
}

// ---- over real HTTP ----

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

struct curl_reply {
    long status = 0;
    std::string body;
};

curl_reply curl_call(const std::string& url, const char* verb, const std::string& body,
                     const std::vector<std::string>& headers) {
    curl_reply out;
    CURL* c = curl_easy_init();
    curl_slist* list = nullptr;
    for (const auto& h : headers) {
        list = curl_slist_append(list, h.c_str());
    }
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb);
    if (!body.empty()) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return out;
}

TEST(http, the_token_header_and_the_body_limit_over_a_real_socket) {
    char templ[] = "/tmp/shoal-api-http-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    std::string dir = templ;
    store::open_options o;
    o.cheap_password_hash = true;
    auto r = store::open_repository("sqlite://" + dir + "/shoal.db", o);
    ASSERT_TRUE(r) << r.err().describe();
    std::shared_ptr<store::repository> repo = std::move(*r);
    store::user u;
    u.name = "root";
    u.role = store::user_role::admin;
    ASSERT_TRUE(repo->create_user(u, "correct horse"));

    auto counters = std::make_shared<api::http_counters>();
    http::router inner;
    api::api_deps deps;
    deps.repo = repo;
    deps.tasks = std::make_shared<fake_tasks>();
    deps.counters = counters;
    api::add_api_routes(inner, std::move(deps), api::api_config{});
    http::server_config sc;
    sc.address = "127.0.0.1";
    sc.port = 0;
    sc.body_size_max = 4096;
    auto srv = http::server::start(
        sc, api::instrumented(std::make_shared<const http::router>(std::move(inner)), counters));
    ASSERT_TRUE(srv) << srv.err().describe();
    std::string base = fmt::format("http://127.0.0.1:{}", (*srv)->port());

    auto login = curl_call(base + "/api/v1/login", "POST",
                           R"({"user": "root", "password": "correct horse"})",
                           {"Content-Type: application/json"});
    ASSERT_EQ(login.status, 200) << login.body;
    std::string token = json::parse(login.body)["token"];
    EXPECT_EQ(curl_call(base + "/api/v1/hosts", "GET", "", {}).status, 401);
    EXPECT_EQ(curl_call(base + "/api/v1/hosts", "GET", "", {"Authorization: Bearer nope"}).status,
              401);
    auto list = curl_call(base + "/api/v1/hosts", "GET", "", {"Authorization: Bearer " + token});
    EXPECT_EQ(list.status, 200);
    EXPECT_EQ(json::parse(list.body)["items"].size(), 0u);
    auto made =
        curl_call(base + "/api/v1/hosts", "POST", R"({"mac": "00:12:3F:C4:57:0C", "name": "pc1"})",
                  {"Authorization: Bearer " + token});
    EXPECT_EQ(made.status, 201) << made.body;
    // A CSV over the limit: 413, and nothing imported.
    std::string csv;
    for (int i = 0; csv.size() <= sc.body_size_max; ++i) {
        csv += fmt::format("\"00:12:3F:C4:{:02X}:{:02X}\",\"pc-{}\"\n", i / 256, i % 256, i);
    }
    auto big = curl_call(base + "/api/v1/hosts/import", "POST", csv,
                         {"Authorization: Bearer " + token, "Content-Type: text/csv"});
    EXPECT_EQ(big.status, 413) << big.body;
    EXPECT_EQ(*repo->count_hosts({}), 1);
    auto m = curl_call(base + "/metrics", "GET", "", {});
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("shoal_http_requests_total{method=\"GET\",code=\"401\"} 2"),
              std::string::npos)
        << m.body;
    (*srv)->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// ---- shoald itself ----

TEST(shoald, starts_with_the_defaults_in_a_temp_dir_answers_and_stops_on_sigterm) {
    const char* exe = std::getenv("SHOALD");
    if (exe == nullptr) {
        GTEST_SKIP() << "SHOALD is not set (meson test sets it)";
    }
    char templ[] = "/tmp/shoald-test-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    std::string dir = templ;
    // A free port: bind port 0, read it, let it go.
    std::uint16_t port = 0;
    {
        http::server_config sc;
        sc.address = "127.0.0.1";
        sc.port = 0;
        auto probe = http::server::start(sc, http::router{});
        ASSERT_TRUE(probe);
        port = (*probe)->port();
    }
    // Only what a temp dir needs differs from the defaults: paths, the port, TFTP off (its
    // port 69 may be taken by another test).
    std::ofstream(dir + "/shoald.json") << fmt::format(
        R"({{"store": "sqlite://{0}/shoald.db", "images": "{0}", "clientos": "{0}",
            "admin": {{"password_file": "{0}/admin-password"}},
            "boot": {{"tftp": {{"enabled": false}},
                      "http": {{"address": "127.0.0.1", "port": {1}}}}}}})",
        dir, port);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        execl(exe, exe, "-c", (dir + "/shoald.json").c_str(), nullptr);
        _exit(127);
    }
    std::string base = fmt::format("http://127.0.0.1:{}", port);
    curl_reply m;
    for (int i = 0; i < 100 && m.status != 200; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        m = curl_call(base + "/metrics", "GET", "", {});
    }
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("shoal_tasks{state=\"queued\"} 0"), std::string::npos) << m.body;
    std::ifstream pwf(dir + "/admin-password");
    std::string password;
    std::getline(pwf, password);
    EXPECT_EQ(password.size(), 24u);
    EXPECT_EQ(std::filesystem::status(dir + "/admin-password").permissions() &
                  std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto login = curl_call(base + "/api/v1/login", "POST",
                           json{{"user", "admin"}, {"password", password}}.dump(), {});
    ASSERT_EQ(login.status, 200) << login.body;
    std::string token = json::parse(login.body)["token"];
    auto hosts = curl_call(base + "/api/v1/hosts", "GET", "", {"Authorization: Bearer " + token});
    EXPECT_EQ(hosts.status, 200);
    auto boot = curl_call(base + "/boot?mac=00:12:3F:C4:57:0C", "GET", "", {});
    EXPECT_EQ(boot.status, 200);
    EXPECT_TRUE(boot.body.starts_with("#!ipxe")) << boot.body;
    auto root = curl_call(base + "/", "GET", "", {});
    EXPECT_EQ(root.status, 302);
    kill(pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 100; ++i) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (i == 99) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            ADD_FAILURE() << "shoald did not stop within 5 s of SIGTERM";
        }
    }
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

}  // namespace
