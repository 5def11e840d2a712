// The store against real databases: every test runs on SQLite (a file in a temporary
// directory) and on PostgreSQL 15 (a private cluster, pg_fixture.h; skipped without root).
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "pg_fixture.h"
#include "store/repository.h"

namespace shoal::store {
namespace {

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ---- model checks that need no database ----

TEST(model, enums_round_trip_and_unknown_names_name_the_field) {
    for (int i = 0; i <= static_cast<int>(task_kind::debug); ++i) {
        const auto k = static_cast<task_kind>(i);
        auto back = task_kind_from_string(to_string(k));
        ASSERT_TRUE(back);
        EXPECT_EQ(*back, k);
    }
    EXPECT_EQ(to_string(user_role::operator_), "operator");
    EXPECT_EQ(*user_role_from_string("operator"), user_role::operator_);
    EXPECT_EQ(to_string(task_state::in_progress), "in_progress");
    auto bad = task_state_from_string("running");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.err().code(), errc::invalid_argument);
    EXPECT_EQ(error_field(bad.err()), "state");
    EXPECT_NE(bad.err().context().find("queued"), std::string_view::npos);  // lists choices
}

TEST(model, transitions_go_forward_only) {
    EXPECT_TRUE(task_transition_allowed(task_state::queued, task_state::active));
    EXPECT_TRUE(task_transition_allowed(task_state::active, task_state::complete));
    EXPECT_TRUE(task_transition_allowed(task_state::queued, task_state::cancelled));
    EXPECT_FALSE(task_transition_allowed(task_state::in_progress, task_state::active));
    EXPECT_FALSE(task_transition_allowed(task_state::complete, task_state::failed));
    EXPECT_FALSE(task_transition_allowed(task_state::queued, task_state::queued));
    EXPECT_FALSE(session_transition_allowed(session_state::complete, session_state::running));
}

TEST(model, macs_normalize_and_bad_ones_name_the_field) {
    EXPECT_EQ(*normalize_mac("00:12:3F:C4:57:0C"), "00:12:3f:c4:57:0c");
    EXPECT_EQ(*normalize_mac("00-12-3f-c4-57-0c"), "00:12:3f:c4:57:0c");
    EXPECT_EQ(*normalize_mac("00123FC4570C"), "00:12:3f:c4:57:0c");
    for (const char* bad :
         {"", "00:12:3F:C4:57", "00:12:3F:C4:57:0C:11", "zz:12:3f:c4:57:0c", "ff:ff:ff:ff:ff:ff",
          "00:00:00:00:00:00", "01:00:5e:00:00:01", "00:12-3f:c4:57:0c"}) {
        auto r = normalize_mac(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.err().code(), errc::invalid_argument);
        EXPECT_EQ(error_field(r.err()), "mac") << r.err().context();
    }
}

TEST(model, records_are_validated_field_by_field) {
    host h;
    h.mac = "00:12:3F:C4:57:0C";
    h.name = "pc-204.01";
    ASSERT_TRUE(validate(h));
    EXPECT_EQ(h.mac, "00:12:3f:c4:57:0c");
    h.name = "bad name";
    EXPECT_EQ(error_field(validate(h).err()), "name");
    h.name = std::string(64, 'a');
    EXPECT_EQ(error_field(validate(h).err()), "name");
    h.name = "ok";
    h.inventory = "[1]";
    EXPECT_EQ(error_field(validate(h).err()), "inventory");
    h.inventory = "{not json";
    EXPECT_EQ(error_field(validate(h).err()), "inventory");

    task t;
    t.kind = task_kind::deploy;
    t.host_id = 1;
    EXPECT_EQ(error_field(validate(t).err()), "image_id");
    t.kind = task_kind::wipe_fast;
    EXPECT_TRUE(validate(t));
    t.progress.percent = 101;
    EXPECT_EQ(error_field(validate(t).err()), "percent");

    session x;
    x.image_id = 1;
    x.group = "239.1.2.3";
    EXPECT_TRUE(validate(x));
    x.group = "10.0.0.1";
    EXPECT_EQ(error_field(validate(x).err()), "group");
    x.group = "ff02::1:3";
    EXPECT_TRUE(validate(x));

    storage_node n;
    n.name = "node1";
    n.url = "ftp://x";
    n.path = "/srv/shoal";
    EXPECT_EQ(error_field(validate(n).err()), "url");
    n.url = "http://10.0.0.2:8080/store";
    n.path = "relative";
    EXPECT_EQ(error_field(validate(n).err()), "path");

    EXPECT_EQ(error_field(validate_password("short").err()), "password");
}

TEST(model, cron_has_five_fields_in_range) {
    for (const char* good : {"0 19 * * 1-5", "*/15 * * * *", "0,30 8-18/2 1 1-12 0", "5 4 * * 7"}) {
        EXPECT_TRUE(validate_cron(good)) << good;
    }
    for (const char* bad :
         {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
          "* * * * 8", "5-1 * * * *", "*/0 * * * *", "1, * * * *", "a * * * *"}) {
        auto st = validate_cron(bad);
        ASSERT_FALSE(st) << bad;
        EXPECT_EQ(error_field(st.err()), "cron");
    }
}

// ---- the repository on both backends ----

class store_test : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        auto store = test::make_test_store(GetParam(), "shoal-store");
        if (!store.skip.empty()) {
            GTEST_SKIP() << "PostgreSQL: " << store.skip;
        }
        ASSERT_TRUE(store.error.empty()) << store.error;
        _dir = store.dir;
        _url = store.url;
        auto r = open_repository(_url, options());
        ASSERT_TRUE(r) << r.err().describe();
        repo = std::move(*r);
        ASSERT_EQ(repo->backend(), GetParam());
    }

    void TearDown() override {
        repo.reset();
        if (!_dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(_dir, ec);
        }
    }

    static open_options options() {
        open_options o;
        o.cheap_password_hash = true;
        return o;
    }

    // Runs a statement on the database behind the repository, bypassing it.
    void raw_sql(const std::string& sql) {
        if (GetParam() == "sqlite") {
            sqlite3* db = nullptr;
            ASSERT_EQ(sqlite3_open((_dir + "/shoal.db").c_str(), &db), SQLITE_OK);
            char* message = nullptr;
            const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
            EXPECT_EQ(rc, SQLITE_OK) << (message != nullptr ? message : "");
            sqlite3_free(message);
            sqlite3_close(db);
        } else {
            PGconn* conn = PQconnectdb(_url.c_str());
            ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
            PGresult* res = PQexec(conn, sql.c_str());
            EXPECT_TRUE(PQresultStatus(res) == PGRES_COMMAND_OK ||
                        PQresultStatus(res) == PGRES_TUPLES_OK)
                << PQresultErrorMessage(res);
            PQclear(res);
            PQfinish(conn);
        }
    }

    host make_host(const std::string& mac, const std::string& name) {
        host h;
        h.mac = mac;
        h.name = name;
        auto r = repo->create_host(h);
        EXPECT_TRUE(r) << r.err().describe();
        return r ? *r : host{};
    }

    image make_image(const std::string& name) {
        image i;
        i.name = name;
        auto r = repo->create_image(i);
        EXPECT_TRUE(r) << r.err().describe();
        return r ? *r : image{};
    }

    std::unique_ptr<repository> repo;
    std::string _dir;
    std::string _url;
};

TEST_P(store_test, host_round_trip) {
    auto img = make_image("win11-lab");
    host_group g;
    g.name = "room-204";
    auto group = repo->create_group(g);
    ASSERT_TRUE(group) << group.err().describe();

    host h;
    h.mac = "00:12:3F:C4:57:0C";  // FOG's form
    h.name = "pc204-01";
    h.description = "front row, left";
    h.image_id = img.id;
    h.groups = {group->id, group->id};
    h.inventory = R"({"cpu":"i5-8500","memory_bytes":8589934592,"disks":[],"nics":[],"dmi":{}})";
    h.last_seen_at = 1700000000;
    auto created = repo->create_host(h);
    ASSERT_TRUE(created) << created.err().describe();
    EXPECT_GT(created->id, 0);
    EXPECT_EQ(created->mac, "00:12:3f:c4:57:0c");
    EXPECT_EQ(created->name, "pc204-01");
    EXPECT_EQ(created->description, "front row, left");
    EXPECT_EQ(created->image_id, img.id);
    EXPECT_EQ(created->groups, std::vector<record_id>{group->id});
    EXPECT_EQ(created->inventory, h.inventory);
    EXPECT_EQ(created->last_seen_at, 1700000000);
    EXPECT_FALSE(created->pending);
    EXPECT_GE(created->created_at, now_s() - 60);

    for (const char* form : {"00:12:3f:c4:57:0c", "00-12-3F-C4-57-0C", "00123fc4570c"}) {
        auto by_mac = repo->get_host_by_mac(form);
        ASSERT_TRUE(by_mac) << form;
        EXPECT_EQ(by_mac->id, created->id);
    }
    EXPECT_EQ(repo->get_host_by_mac("00:12:3f:c4:57:0d").err().code(), errc::not_found);
    EXPECT_EQ(repo->get_host_by_mac("nonsense").err().code(), errc::invalid_argument);
    EXPECT_EQ(repo->get_host_by_name("pc204-01")->id, created->id);

    auto in_group = repo->list_hosts({.group_id = group->id}, {});
    ASSERT_TRUE(in_group);
    ASSERT_EQ(in_group->size(), 1u);
    EXPECT_EQ((*in_group)[0].groups, std::vector<record_id>{group->id});
    EXPECT_EQ(repo->get_group(group->id)->hosts, std::vector<record_id>{created->id});

    host changed = *created;
    changed.name = "pc204-01b";
    changed.groups.clear();
    changed.image_id.reset();
    changed.pending = true;
    auto updated = repo->update_host(changed);
    ASSERT_TRUE(updated) << updated.err().describe();
    EXPECT_EQ(updated->name, "pc204-01b");
    EXPECT_TRUE(updated->groups.empty());
    EXPECT_FALSE(updated->image_id);
    EXPECT_TRUE(updated->pending);
    EXPECT_EQ(*repo->count_hosts({.pending = true}), 1);
    EXPECT_EQ(*repo->count_hosts({.pending = false}), 0);

    auto touched = repo->touch_host(created->id, 1800000000, std::string(R"({"cpu":"i7"})"));
    ASSERT_TRUE(touched);
    EXPECT_EQ(touched->last_seen_at, 1800000000);
    EXPECT_EQ(touched->inventory, R"({"cpu":"i7"})");
    EXPECT_EQ(touched->name, "pc204-01b");
    EXPECT_EQ(repo->touch_host(created->id, 1, std::string("[")).err().code(),
              errc::invalid_argument);

    ASSERT_TRUE(repo->delete_host(created->id));
    EXPECT_EQ(repo->get_host(created->id).err().code(), errc::not_found);
    EXPECT_EQ(repo->delete_host(created->id).err().code(), errc::not_found);
    EXPECT_TRUE(repo->get_group(group->id)->hosts.empty());
}

TEST_P(store_test, duplicate_mac_or_name_is_a_conflict_naming_the_field) {
    make_host("00:12:3f:c4:57:0c", "pc1");
    host h;
    h.mac = "00-12-3F-C4-57-0C";  // same MAC, other form
    h.name = "pc2";
    auto r = repo->create_host(h);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::conflict);
    EXPECT_EQ(error_field(r.err()), "mac");
    h.mac = "00:12:3f:c4:57:0d";
    h.name = "pc1";
    r = repo->create_host(h);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::conflict);
    EXPECT_EQ(error_field(r.err()), "name");

    auto second = make_host("00:12:3f:c4:57:0e", "pc3");
    second.name = "pc1";
    auto u = repo->update_host(second);
    ASSERT_FALSE(u);
    EXPECT_EQ(error_field(u.err()), "name");
    EXPECT_EQ(repo->get_host(second.id)->name, "pc3");

    h.name = "pc9";
    h.mac = "not-a-mac";
    r = repo->create_host(h);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);
    EXPECT_EQ(error_field(r.err()), "mac");
    h.mac = "00:12:3f:c4:57:0f";
    h.image_id = 4242;
    r = repo->create_host(h);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);
    EXPECT_EQ(error_field(r.err()), "image_id");
    EXPECT_EQ(*repo->count_hosts({}), 2);

    make_image("img");
    image dup;
    dup.name = "img";
    auto di = repo->create_image(dup);
    ASSERT_FALSE(di);
    EXPECT_EQ(di.err().code(), errc::conflict);
    EXPECT_EQ(error_field(di.err()), "name");
}

TEST_P(store_test, images_storage_nodes_and_groups_round_trip) {
    storage_group sg;
    sg.name = "lab";
    sg.description = "the lab's nodes";
    auto group = repo->create_storage_group(sg);
    ASSERT_TRUE(group) << group.err().describe();
    EXPECT_EQ(repo->get_storage_group(group->id)->description, "the lab's nodes");

    storage_node n;
    n.name = "node1";
    n.url = "http://10.0.0.2:8080/store";
    n.path = "/srv/shoal";
    n.storage_group_id = group->id;
    n.master = true;
    auto node = repo->create_storage_node(n);
    ASSERT_TRUE(node) << node.err().describe();
    EXPECT_EQ(node->url, n.url);
    EXPECT_EQ(node->path, n.path);
    EXPECT_EQ(node->storage_group_id, group->id);
    EXPECT_TRUE(node->master);
    EXPECT_TRUE(node->enabled);

    image i;
    i.name = "win11-lab";
    i.kind = image_kind::multi_partition_single_disk;
    i.description = "Windows 11 for the labs";
    i.size_bytes = 34359738368;
    i.disks = R"([{"index":0,"size_bytes":256060514304}])";
    i.storage_nodes = {node->id};
    auto img = repo->create_image(i);
    ASSERT_TRUE(img) << img.err().describe();
    EXPECT_EQ(img->kind, image_kind::multi_partition_single_disk);
    EXPECT_EQ(img->size_bytes, 34359738368);
    EXPECT_EQ(img->disks, i.disks);
    EXPECT_EQ(img->storage_nodes, std::vector<record_id>{node->id});
    EXPECT_EQ(repo->get_image_by_name("win11-lab")->id, img->id);

    img->is_protected = true;
    img->storage_nodes.clear();
    auto upd = repo->update_image(*img);
    ASSERT_TRUE(upd);
    EXPECT_TRUE(upd->is_protected);
    EXPECT_TRUE(upd->storage_nodes.empty());
    auto del = repo->delete_image(img->id);
    ASSERT_FALSE(del);
    EXPECT_EQ(del.err().code(), errc::conflict);
    EXPECT_EQ(error_field(del.err()), "protected");
    upd->is_protected = false;
    ASSERT_TRUE(repo->update_image(*upd));

    // An image a task uses is not deleted from under it.
    auto h = make_host("02:00:00:00:00:01", "pc1");
    task t;
    t.kind = task_kind::deploy;
    t.host_id = h.id;
    t.image_id = img->id;
    ASSERT_TRUE(repo->create_task(t));
    del = repo->delete_image(img->id);
    ASSERT_FALSE(del);
    EXPECT_EQ(del.err().code(), errc::conflict);

    node->enabled = false;
    node->storage_group_id.reset();
    auto nu = repo->update_storage_node(*node);
    ASSERT_TRUE(nu);
    EXPECT_FALSE(nu->enabled);
    EXPECT_EQ(repo->list_storage_nodes({})->size(), 1u);
    EXPECT_EQ(repo->list_storage_groups({})->size(), 1u);
    ASSERT_TRUE(repo->delete_storage_group(group->id));
    ASSERT_TRUE(repo->delete_storage_node(node->id));
    EXPECT_EQ(repo->get_storage_node(node->id).err().code(), errc::not_found);
    EXPECT_EQ(repo->list_images({})->size(), 1u);
}

TEST_P(store_test, one_open_task_per_host_and_its_history) {
    auto img = make_image("img");
    auto h = make_host("02:00:00:00:00:01", "pc1");
    task t;
    t.kind = task_kind::deploy;
    t.host_id = h.id;
    t.image_id = img.id;
    t.shutdown = shutdown_action::poweroff;
    t.wol = true;
    auto first = repo->create_task(t, "by test");
    ASSERT_TRUE(first) << first.err().describe();
    EXPECT_EQ(first->state, task_state::queued);
    EXPECT_EQ(first->shutdown, shutdown_action::poweroff);
    EXPECT_TRUE(first->wol);
    EXPECT_FALSE(first->started_at);

    auto second = repo->create_task(t);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.err().code(), errc::conflict);
    EXPECT_EQ(error_field(second.err()), "host_id");
    EXPECT_EQ((*repo->open_task_for_host(h.id))->id, first->id);

    auto active = repo->transition_task(first->id, task_state::active, "booted");
    ASSERT_TRUE(active) << active.err().describe();
    EXPECT_TRUE(active->started_at);
    EXPECT_FALSE(repo->create_task(t));  // still open

    task_progress pr;
    pr.percent = 42.5;
    pr.bytes_done = 1000;
    pr.bytes_total = 2353;
    pr.rate_Bps = 125000000;
    pr.message = "writing /dev/sda2";
    auto progressed = repo->update_task_progress(first->id, pr);
    ASSERT_TRUE(progressed) << progressed.err().describe();
    EXPECT_DOUBLE_EQ(progressed->progress.percent, 42.5);
    EXPECT_EQ(progressed->progress.bytes_done, 1000);
    EXPECT_EQ(progressed->progress.bytes_total, 2353);
    EXPECT_EQ(progressed->progress.rate_Bps, 125000000);
    EXPECT_EQ(progressed->progress.message, "writing /dev/sda2");

    ASSERT_TRUE(repo->transition_task(first->id, task_state::in_progress));
    auto back = repo->transition_task(first->id, task_state::active);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.err().code(), errc::conflict);
    EXPECT_EQ(error_field(back.err()), "state");
    auto done = repo->transition_task(first->id, task_state::complete, "verified");
    ASSERT_TRUE(done);
    EXPECT_TRUE(done->finished_at);
    EXPECT_EQ(done->started_at, active->started_at);
    EXPECT_EQ(repo->transition_task(first->id, task_state::failed).err().code(), errc::conflict);
    EXPECT_EQ(repo->update_task_progress(first->id, pr).err().code(), errc::conflict);
    EXPECT_FALSE(*repo->open_task_for_host(h.id));

    auto events = repo->task_events(first->id);
    ASSERT_TRUE(events);
    ASSERT_EQ(events->size(), 4u);
    EXPECT_FALSE((*events)[0].from);
    EXPECT_EQ((*events)[0].to, task_state::queued);
    EXPECT_EQ((*events)[0].message, "by test");
    EXPECT_EQ((*events)[1].from, task_state::queued);
    EXPECT_EQ((*events)[1].to, task_state::active);
    EXPECT_EQ((*events)[1].message, "booted");
    EXPECT_EQ((*events)[2].to, task_state::in_progress);
    EXPECT_EQ((*events)[3].from, task_state::in_progress);
    EXPECT_EQ((*events)[3].to, task_state::complete);
    EXPECT_EQ((*events)[3].message, "verified");

    // Finished: the host takes a new task.
    t.kind = task_kind::inventory;
    t.image_id.reset();
    auto next = repo->create_task(t);
    ASSERT_TRUE(next) << next.err().describe();
    EXPECT_EQ(*repo->count_tasks({}), 2);
    EXPECT_EQ(*repo->count_tasks({.open_only = true}), 1);
    auto completed = repo->list_tasks({.state = task_state::complete}, {});
    ASSERT_TRUE(completed);
    ASSERT_EQ(completed->size(), 1u);
    EXPECT_EQ((*completed)[0].id, first->id);
    auto by_kind = repo->list_tasks({.kind = task_kind::inventory, .host_id = h.id}, {});
    ASSERT_EQ(by_kind->size(), 1u);
    EXPECT_EQ((*by_kind)[0].id, next->id);

    // Bad references name their field; missing tasks are not found.
    task orphan;
    orphan.kind = task_kind::wol;
    orphan.host_id = 999;
    auto o = repo->create_task(orphan);
    ASSERT_FALSE(o);
    EXPECT_EQ(o.err().code(), errc::invalid_argument);
    EXPECT_EQ(error_field(o.err()), "host_id");
    EXPECT_EQ(repo->transition_task(999, task_state::active).err().code(), errc::not_found);
    EXPECT_EQ(repo->task_events(999).err().code(), errc::not_found);
    EXPECT_EQ(repo->list_tasks({}, {.limit = 0}).err().code(), errc::invalid_argument);
}

TEST_P(store_test, task_keys_and_batch_progress) {
    auto img = make_image("img");
    std::vector<record_id> ids;
    for (int i = 0; i < 3; ++i) {
        auto h = make_host(fmt::format("02:00:00:00:01:{:02x}", i), fmt::format("pc{}", i));
        task t;
        t.kind = task_kind::multicast;
        t.host_id = h.id;
        t.image_id = img.id;
        auto created = repo->create_task(t);
        ASSERT_TRUE(created);
        ids.push_back(created->id);
    }
    auto key = repo->issue_task_key(ids[1]);
    ASSERT_TRUE(key);
    EXPECT_EQ(key->size(), 64u);
    EXPECT_EQ(repo->get_task_by_key(*key)->id, ids[1]);
    auto again = repo->issue_task_key(ids[1]);
    ASSERT_TRUE(again);
    EXPECT_NE(*again, *key);
    EXPECT_EQ(repo->get_task_by_key(*key).err().code(), errc::denied);  // replaced
    EXPECT_EQ(repo->get_task_by_key("x").err().code(), errc::denied);
    EXPECT_EQ(repo->issue_task_key(999).err().code(), errc::not_found);

    ASSERT_TRUE(repo->transition_task(ids[2], task_state::cancelled));
    std::vector<std::pair<record_id, task_progress>> updates;
    for (record_id id : {ids[0], ids[1], ids[2], record_id{999}}) {
        task_progress pr;
        pr.percent = 10;
        pr.bytes_done = id;
        updates.emplace_back(id, pr);
    }
    auto written = repo->update_task_progress_batch(updates);
    ASSERT_TRUE(written) << written.err().describe();
    EXPECT_EQ(*written, 2u);  // the cancelled and the missing one are skipped
    EXPECT_EQ(repo->get_task(ids[0])->progress.bytes_done, ids[0]);
    EXPECT_EQ(repo->get_task(ids[2])->progress.bytes_done, 0);

    // Sessions: tasks join, the state moves forward with its times.
    session x;
    x.image_id = img.id;
    x.group = "239.255.1.1";
    x.port = 9000;
    x.receivers_min = 2;
    x.wait_max_s = 300;
    x.rate_bps = 1000000000;
    auto s = repo->create_session(x);
    ASSERT_TRUE(s) << s.err().describe();
    EXPECT_EQ(s->state, session_state::waiting);
    EXPECT_EQ(s->group, "239.255.1.1");
    EXPECT_EQ(s->port, 9000);
    EXPECT_EQ(s->receivers_min, 2);
    EXPECT_EQ(s->rate_bps, 1000000000);
    auto joined = repo->attach_session_tasks(s->id, {ids[0], ids[1]});
    ASSERT_TRUE(joined) << joined.err().describe();
    EXPECT_EQ(joined->tasks, (std::vector<record_id>{ids[0], ids[1]}));
    EXPECT_EQ(repo->get_task(ids[0])->session_id, s->id);
    EXPECT_EQ(repo->attach_session_tasks(s->id, {999}).err().code(), errc::invalid_argument);
    EXPECT_EQ(repo->get_session(s->id)->tasks.size(), 2u);  // the failed attach changed nothing
    EXPECT_EQ((*repo->list_tasks({.session_id = s->id}, {})).size(), 2u);
    auto running = repo->set_session_state(s->id, session_state::running);
    ASSERT_TRUE(running);
    EXPECT_TRUE(running->started_at);
    EXPECT_EQ(repo->set_session_state(s->id, session_state::waiting).err().code(), errc::conflict);
    auto listed = repo->list_sessions({.state = session_state::running}, {});
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].tasks.size(), 2u);
    ASSERT_TRUE(repo->set_session_state(s->id, session_state::complete));
    EXPECT_TRUE(repo->get_session(s->id)->finished_at);
}

TEST_P(store_test, schedules_come_due) {
    auto img = make_image("img");
    auto h = make_host("02:00:00:00:00:01", "pc1");
    host_group g;
    g.name = "room";
    g.hosts = {h.id};
    auto group = repo->create_group(g);
    ASSERT_TRUE(group);

    schedule once;
    once.name = "tonight";
    once.kind = schedule_kind::once;
    once.at = 2000;
    once.task.kind = task_kind::multicast;
    once.task.image_id = img.id;
    once.task.wol = true;
    once.groups = {group->id};
    auto a = repo->create_schedule(once);
    ASSERT_TRUE(a) << a.err().describe();
    EXPECT_EQ(a->next_run_at, 2000);
    EXPECT_EQ(a->groups, std::vector<record_id>{group->id});
    EXPECT_TRUE(a->task.wol);

    schedule cron;
    cron.name = "weekdays";
    cron.kind = schedule_kind::cron;
    cron.cron = "0 19 * * 1-5";
    cron.task.kind = task_kind::wipe_fast;
    cron.hosts = {h.id};
    cron.next_run_at = 1000;
    auto c = repo->create_schedule(cron);
    ASSERT_TRUE(c) << c.err().describe();
    cron.name = "bad";
    cron.cron = "0 25 * * *";
    EXPECT_EQ(error_field(repo->create_schedule(cron).err()), "cron");

    auto due = repo->schedules_due(1500, 10);
    ASSERT_TRUE(due);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].id, c->id);
    due = repo->schedules_due(2000, 10);
    ASSERT_EQ(due->size(), 2u);
    EXPECT_EQ((*due)[0].id, c->id);  // oldest first
    EXPECT_EQ(repo->schedules_due(2000, 1)->size(), 1u);

    auto ran = repo->mark_schedule_run(a->id, 2001, std::nullopt);
    ASSERT_TRUE(ran);
    EXPECT_EQ(ran->last_run_at, 2001);
    EXPECT_FALSE(ran->next_run_at);
    c->enabled = false;
    ASSERT_TRUE(repo->update_schedule(*c));
    EXPECT_TRUE(repo->schedules_due(1 << 30, 10)->empty());
    EXPECT_EQ(repo->list_schedules({})->size(), 2u);
    ASSERT_TRUE(repo->delete_schedule(a->id));
    EXPECT_EQ(repo->get_schedule(a->id).err().code(), errc::not_found);
}

TEST_P(store_test, passwords_are_argon2id_and_verified) {
    user u;
    u.name = "alice";
    u.role = user_role::operator_;
    auto created = repo->create_user(u, "correct horse battery");
    ASSERT_TRUE(created) << created.err().describe();
    EXPECT_EQ(created->role, user_role::operator_);
    EXPECT_EQ(repo->create_user(u, "another password").err().code(), errc::conflict);
    EXPECT_EQ(error_field(repo->create_user({.name = "bob"}, "short").err()), "password");

    auto ok_user = repo->verify_password("alice", "correct horse battery");
    ASSERT_TRUE(ok_user) << ok_user.err().describe();
    EXPECT_EQ(ok_user->id, created->id);
    EXPECT_EQ(repo->verify_password("alice", "correct horse batterY").err().code(), errc::denied);
    EXPECT_EQ(repo->verify_password("mallory", "correct horse battery").err().code(), errc::denied);

    ASSERT_TRUE(repo->set_password(created->id, "a new passphrase"));
    EXPECT_FALSE(repo->verify_password("alice", "correct horse battery"));
    EXPECT_TRUE(repo->verify_password("alice", "a new passphrase"));

    // Only an Argon2id hash is stored, never the password.
    if (GetParam() == "sqlite") {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open((_dir + "/shoal.db").c_str(), &db), SQLITE_OK);
        sqlite3_stmt* st = nullptr;
        ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT password_hash FROM users", -1, &st, nullptr),
                  SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        const std::string hash = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        EXPECT_TRUE(hash.starts_with("$argon2id$")) << hash;
        EXPECT_EQ(hash.find("passphrase"), std::string::npos);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }

    created->role = user_role::viewer;
    EXPECT_EQ(repo->update_user(*created)->role, user_role::viewer);
    EXPECT_EQ(repo->list_users({})->size(), 1u);
}

TEST_P(store_test, tokens_are_looked_up_by_secret_and_expire) {
    auto u = repo->create_user({.name = "alice", .role = user_role::admin}, "password123");
    ASSERT_TRUE(u);
    auto t = repo->create_token(u->id, "ci", std::nullopt);
    ASSERT_TRUE(t) << t.err().describe();
    EXPECT_EQ(t->secret.size(), 64u);
    EXPECT_EQ(t->record.user_id, u->id);

    auto found = repo->lookup_token(t->secret);
    ASSERT_TRUE(found) << found.err().describe();
    EXPECT_EQ(found->record.id, t->record.id);
    EXPECT_EQ(found->owner.name, "alice");
    EXPECT_EQ(found->owner.role, user_role::admin);
    EXPECT_TRUE(found->record.last_used_at);

    std::string wrong = t->secret;
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    EXPECT_EQ(repo->lookup_token(wrong).err().code(), errc::denied);
    EXPECT_EQ(repo->lookup_token("").err().code(), errc::denied);
    EXPECT_EQ(repo->lookup_token("Bearer xyz").err().code(), errc::denied);

    auto expired = repo->create_token(u->id, "old", now_s() - 10);
    ASSERT_TRUE(expired);
    EXPECT_EQ(repo->lookup_token(expired->secret).err().code(), errc::denied);
    auto later = repo->create_token(u->id, "later", now_s() + 3600);
    ASSERT_TRUE(later);
    EXPECT_TRUE(repo->lookup_token(later->secret));

    EXPECT_EQ(repo->list_tokens(u->id, {})->size(), 3u);
    EXPECT_EQ(repo->create_token(999, "x", std::nullopt).err().code(), errc::invalid_argument);

    // The store keeps only the SHA-256: the secret is nowhere in the database.
    if (GetParam() == "sqlite") {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open((_dir + "/shoal.db").c_str(), &db), SQLITE_OK);
        sqlite3_stmt* st = nullptr;
        ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM tokens WHERE secret_sha256 = ?1", -1,
                                     &st, nullptr),
                  SQLITE_OK);
        sqlite3_bind_text(st, 1, t->secret.c_str(), -1, SQLITE_TRANSIENT);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        EXPECT_EQ(sqlite3_column_int(st, 0), 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }

    ASSERT_TRUE(repo->delete_token(t->record.id));
    EXPECT_EQ(repo->lookup_token(t->secret).err().code(), errc::denied);
    ASSERT_TRUE(repo->delete_user(u->id));
    EXPECT_EQ(repo->lookup_token(later->secret).err().code(), errc::denied);
}

TEST_P(store_test, import_is_all_or_nothing) {
    make_host("02:00:00:00:00:99", "existing");
    std::vector<host> batch;
    for (int i = 0; i < 5; ++i) {
        host h;
        h.mac = fmt::format("00:12:3F:C4:57:{:02X}", i);
        h.name = fmt::format("pc{}", i);
        batch.push_back(h);
    }

    auto bad_mac = batch;
    bad_mac[2].mac = "00:12:3F:C4:57";
    auto r = repo->import_hosts(bad_mac);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);
    EXPECT_EQ(error_field(r.err()), "hosts[2].mac") << r.err().context();
    EXPECT_EQ(*repo->count_hosts({}), 1);

    auto dup_in_batch = batch;
    dup_in_batch[3].name = "pc1";
    r = repo->import_hosts(dup_in_batch);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::conflict);
    EXPECT_EQ(error_field(r.err()), "hosts[3].name");
    EXPECT_EQ(*repo->count_hosts({}), 1);

    // Valid on its own, but clashes with the store: found inside the transaction, after
    // earlier hosts were written, which must roll back.
    auto dup_in_store = batch;
    dup_in_store[4].mac = "02-00-00-00-00-99";
    r = repo->import_hosts(dup_in_store);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::conflict);
    EXPECT_EQ(error_field(r.err()), "hosts[4].mac");
    EXPECT_EQ(*repo->count_hosts({}), 1);
    EXPECT_EQ(repo->get_host_by_mac("00:12:3f:c4:57:00").err().code(), errc::not_found);

    auto done = repo->import_hosts(batch);
    ASSERT_TRUE(done) << done.err().describe();
    EXPECT_EQ(*done, 5u);
    EXPECT_EQ(*repo->count_hosts({}), 6);
    EXPECT_EQ(repo->get_host_by_mac("00:12:3f:c4:57:04")->name, "pc4");
    auto page2 = repo->list_hosts({}, {.limit = 4, .offset = 4});
    ASSERT_TRUE(page2);
    ASSERT_EQ(page2->size(), 2u);
    EXPECT_EQ((*page2)[1].name, "pc4");
}

TEST_P(store_test, migrations_apply_once_and_a_newer_schema_is_refused) {
    EXPECT_EQ(*repo->schema_version(), schema_version_latest());
    make_host("02:00:00:00:00:01", "pc1");
    repo.reset();
    // Opening again applies nothing (CREATE TABLE would fail) and keeps the data.
    auto again = open_repository(_url, options());
    ASSERT_TRUE(again) << again.err().describe();
    EXPECT_EQ(*(*again)->schema_version(), schema_version_latest());
    EXPECT_EQ(*(*again)->count_hosts({}), 1);
    again->reset();

    raw_sql(fmt::format(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({}, 'future.sql', 0)",
        schema_version_latest() + 1));
    auto refused = open_repository(_url, options());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.err().code(), errc::version);
    EXPECT_NE(refused.err().context().find("newer"), std::string_view::npos)
        << refused.err().context();
}

TEST_P(store_test, threads_share_one_repository) {
    constexpr int thread_count = 4;
    constexpr int hosts_per_thread = 25;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < thread_count; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < hosts_per_thread; ++i) {
                host h;
                h.mac = fmt::format("02:00:00:00:{:02x}:{:02x}", t, i);
                h.name = fmt::format("pc-{}-{}", t, i);
                auto created = repo->create_host(h);
                if (!created || !repo->get_host_by_mac(h.mac)) {
                    ++failures;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(*repo->count_hosts({}), thread_count * hosts_per_thread);
}

TEST(open, urls_pick_the_backend) {
    EXPECT_EQ(open_repository("").err().code(), errc::invalid_argument);
    EXPECT_EQ(open_repository("sqlite://").err().code(), errc::invalid_argument);
    auto mem = open_repository("sqlite::memory:");
    ASSERT_TRUE(mem) << mem.err().describe();
    EXPECT_EQ((*mem)->backend(), "sqlite");
    auto unreachable = open_repository("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
    ASSERT_FALSE(unreachable);
    EXPECT_EQ(unreachable.err().code(), errc::unavailable);
    auto bad_dir = open_repository("/nonexistent/dir/shoal.db");
    ASSERT_FALSE(bad_dir);
    EXPECT_EQ(bad_dir.err().code(), errc::io);
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& param) { return param.param; }
INSTANTIATE_TEST_SUITE_P(backends, store_test, ::testing::Values("sqlite", "postgresql"),
                         backend_name);

// PostgreSQL restarted under an open repository: the next call reconnects (a read is run
// again) or says unavailable; the one after works, and nothing stored is lost.
TEST(postgresql, survives_a_server_restart) {
    if (auto why = test::pg_unavailable_reason(); !why.empty()) {
        GTEST_SKIP() << "PostgreSQL: " << why;
    }
    test::pg_cluster* pg = test::shared_pg();
    ASSERT_NE(pg, nullptr);
    const std::string url = pg->create_database();
    ASSERT_FALSE(url.empty()) << pg->last_error();
    open_options o;
    o.cheap_password_hash = true;
    auto repo_r = open_repository(url, o);
    ASSERT_TRUE(repo_r) << repo_r.err().describe();
    auto& repo = *repo_r;
    host h;
    h.mac = "02:00:00:00:00:01";
    h.name = "pc1";
    auto created = repo->create_host(h);
    ASSERT_TRUE(created);

    // A read after the restart: retried on a new connection.
    ASSERT_TRUE(pg->restart()) << pg->last_error();
    auto read = repo->get_host(created->id);
    if (!read) {
        EXPECT_EQ(read.err().code(), errc::unavailable) << read.err().describe();
        read = repo->get_host(created->id);
    }
    ASSERT_TRUE(read) << read.err().describe();
    EXPECT_EQ(read->name, "pc1");

    // A single write after the restart: unavailable at worst, never a crash.
    ASSERT_TRUE(pg->restart()) << pg->last_error();
    auto touched = repo->touch_host(created->id, 42, std::nullopt);
    if (!touched) {
        EXPECT_EQ(touched.err().code(), errc::unavailable) << touched.err().describe();
        touched = repo->touch_host(created->id, 42, std::nullopt);
    }
    ASSERT_TRUE(touched) << touched.err().describe();
    EXPECT_EQ(touched->last_seen_at, 42);

    // A transaction after the restart: BEGIN is safe to send again.
    ASSERT_TRUE(pg->restart()) << pg->last_error();
    h.mac = "02:00:00:00:00:02";
    h.name = "pc2";
    auto second = repo->create_host(h);
    if (!second) {
        EXPECT_EQ(second.err().code(), errc::unavailable) << second.err().describe();
        second = repo->create_host(h);
    }
    ASSERT_TRUE(second) << second.err().describe();
    EXPECT_EQ(*repo->count_hosts({}), 2);

    // The connection killed by an administrator (the server stays up).
    PGconn* admin = PQconnectdb(url.c_str());
    ASSERT_EQ(PQstatus(admin), CONNECTION_OK) << PQerrorMessage(admin);
    PGresult* res = PQexec(admin,
                           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                           "datname = current_database() AND pid <> pg_backend_pid()");
    EXPECT_EQ(PQresultStatus(res), PGRES_TUPLES_OK) << PQresultErrorMessage(res);
    EXPECT_GE(PQntuples(res), 1);
    PQclear(res);
    PQfinish(admin);
    auto count = repo->count_hosts({});
    if (!count) {
        EXPECT_EQ(count.err().code(), errc::unavailable) << count.err().describe();
        count = repo->count_hosts({});
    }
    ASSERT_TRUE(count) << count.err().describe();
    EXPECT_EQ(*count, 2);
}

}  // namespace
}  // namespace shoal::store
