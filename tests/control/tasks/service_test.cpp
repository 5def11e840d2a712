// The tasks service over a real SQLite store with a fake sender engine (the engine's own
// sender runs in the netns integration test): sessions from multicast tasks, start rules,
// progress into tasks, completion, cancel, resume after a restart, schedules, the iPXE
// task source and the PC's session parameters.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "store/repository.h"
#include "tasks/service.h"

namespace shoal::control::tasks {
namespace {

using namespace std::chrono_literals;

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Plays the engine: reports its receivers (the tasks it is told about) half-way, then
// written, and returns; or, with `block`, reports and waits for cancel.
class fake_engine final : public sender_engine {
public:
    std::mutex mutex;
    std::vector<sender_run> runs;  // copies, without the callbacks
    std::vector<std::uint32_t> receivers;
    std::uint64_t total = 1'000'000;
    bool block = false;
    std::atomic<int> running{0};

    result<sender_outcome> run(const sender_run& r) override {
        std::vector<std::uint32_t> ids;
        {
            std::lock_guard lock(mutex);
            sender_run copy = r;
            copy.on_progress = nullptr;
            copy.cancel = nullptr;
            runs.push_back(copy);
            ids = receivers;
        }
        ++running;
        std::vector<receiver_figures> figures;
        for (auto id : ids) {
            figures.push_back({id, total / 2, 1000, false, false, false});
        }
        r.on_progress(figures, total);
        std::this_thread::sleep_for(1100ms);
        for (auto& f : figures) {
            f.bytes_done = total;
            f.complete = true;
        }
        r.on_progress(figures, total);
        while (block && !r.cancel->load()) {
            std::this_thread::sleep_for(20ms);
        }
        --running;
        sender_outcome out;
        out.bytes_total = total;
        out.seconds = 1.1;
        out.complete = figures.size();
        out.cancelled = r.cancel->load();
        out.receivers = figures;
        return out;
    }
};

struct fixture : ::testing::Test {
    std::shared_ptr<store::repository> repo;
    std::shared_ptr<fake_engine> engine = std::make_shared<fake_engine>();
    store::image img;
    std::vector<store::host> hosts;

    void SetUp() override {
        store::open_options o;
        o.cheap_password_hash = true;
        auto r = store::open_repository("sqlite::memory:", o);
        ASSERT_TRUE(r) << r.err().describe();
        repo = std::shared_ptr<store::repository>(std::move(*r));
        store::image i;
        i.name = "lab-ext4";
        auto made = repo->create_image(i);
        ASSERT_TRUE(made) << made.err().describe();
        img = *made;
        for (int n = 1; n <= 4; ++n) {
            store::host h;
            h.mac = fmt::format("52:54:00:00:00:0{}", n);
            h.name = fmt::format("pc{}", n);
            auto hm = repo->create_host(h);
            ASSERT_TRUE(hm) << hm.err().describe();
            hosts.push_back(*hm);
        }
    }

    tasks_config config() {
        tasks_config c;
        c.finish_grace_s = 5;
        c.tick_ms = 50;
        c.progress_interval_ms = 200;
        c.wait_max_s = 600;
        c.gather_s = 0;
        return c;
    }

    store::task multicast(const store::host& h) {
        store::task t;
        t.kind = store::task_kind::multicast;
        t.host_id = h.id;
        t.image_id = img.id;
        auto made = repo->create_task(t);
        EXPECT_TRUE(made) << made.err().describe();
        return *made;
    }

    // What the PC does: boots (the script gives its key), asks for its session.
    std::string boot(service& svc, const store::host& h, std::int64_t task_id) {
        store_task_source src(repo);
        auto mac = ipxe::parse_mac(h.mac);
        auto b = src.pending_task(*mac);
        EXPECT_TRUE(b && *b);
        EXPECT_EQ((*b)->type, std::to_string(task_id));
        std::string key;
        for (const auto& [k, v] : (*b)->args) {
            if (k == "key") {
                key = v;
            }
        }
        auto cs = svc.session_for_key(key, now_s());
        EXPECT_TRUE(cs) << cs.err().describe();
        return key;
    }

    store::task task(std::int64_t id) {
        auto t = repo->get_task(id);
        EXPECT_TRUE(t);
        return *t;
    }

    template <class F>
    bool wait_for(F f, std::chrono::milliseconds limit = 10s) {
        auto until = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < until) {
            if (f()) {
                return true;
            }
            std::this_thread::sleep_for(20ms);
        }
        return f();
    }
};

TEST_F(fixture, tasks_for_one_image_share_a_session_that_starts_when_all_joined) {
    service svc(repo, config(), engine);
    auto t1 = multicast(hosts[0]);
    auto t2 = multicast(hosts[1]);
    auto t3 = multicast(hosts[2]);
    svc.tick(now_s());
    ASSERT_TRUE(task(t1.id).session_id);
    auto sid = *task(t1.id).session_id;
    EXPECT_EQ(task(t2.id).session_id, sid);
    EXPECT_EQ(task(t3.id).session_id, sid);
    auto s = repo->get_session(sid);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->state, store::session_state::waiting);
    EXPECT_EQ(s->group, "239.77.0.1");

    std::string k1 = boot(svc, hosts[0], t1.id);
    std::string k2 = boot(svc, hosts[1], t2.id);
    EXPECT_EQ(task(t1.id).state, store::task_state::active);
    svc.tick(now_s());
    EXPECT_EQ(repo->get_session(sid)->state, store::session_state::waiting);  // 2 of 3
    // The session's parameters as the PC sees them.
    auto cs = svc.session_for_key(k1, now_s());
    ASSERT_TRUE(cs);
    EXPECT_EQ(cs->session_id, sid);
    EXPECT_EQ(cs->group, "239.77.0.1");
    EXPECT_EQ(cs->image, "lab-ext4");
    EXPECT_EQ(cs->key_hex.size(), 64U);
    EXPECT_EQ(cs->session_state, "waiting");
    EXPECT_FALSE(svc.session_for_key("00" + k1.substr(2), now_s()));

    engine->receivers = {static_cast<std::uint32_t>(t1.id), static_cast<std::uint32_t>(t2.id),
                         static_cast<std::uint32_t>(t3.id), 999999};
    std::string k3 = boot(svc, hosts[2], t3.id);
    svc.tick(now_s());
    EXPECT_EQ(repo->get_session(sid)->state, store::session_state::running);
    // Progress reaches the tasks: half-way, in progress.
    ASSERT_TRUE(wait_for([&] { return task(t2.id).progress.bytes_done > 0; }));
    auto mid = task(t2.id);
    EXPECT_EQ(mid.state, store::task_state::in_progress);
    EXPECT_EQ(mid.progress.bytes_total, 1'000'000);
    ASSERT_TRUE(wait_for([&] { return task(t2.id).progress.bytes_done == 1'000'000; }));
    auto written = task(t2.id);
    EXPECT_EQ(written.progress.percent, 100.0);
    EXPECT_GT(written.progress.rate_Bps, 0);  // 500 000 bytes in ~1.1 s
    EXPECT_LT(written.progress.rate_Bps, 1'000'000);
    // The PCs report verified (as /client/progress does); the session completes.
    for (auto id : {t1.id, t2.id, t3.id}) {
        ASSERT_TRUE(repo->transition_task(id, store::task_state::complete, "verified"));
    }
    ASSERT_TRUE(wait_for([&] {
        svc.tick(now_s());
        return repo->get_session(sid)->state == store::session_state::complete;
    }));
    std::lock_guard lock(engine->mutex);
    ASSERT_EQ(engine->runs.size(), 1U);
    EXPECT_EQ(engine->runs[0].image_name, "lab-ext4");
    EXPECT_EQ(engine->runs[0].receivers_min, 3U);
    EXPECT_EQ(engine->runs[0].key, svc.session_key(sid));
    EXPECT_EQ(engine->runs[0].key.size(), 32U);
    (void)k2;
    (void)k3;
}

TEST_F(fixture, a_pc_that_never_reports_verified_fails_its_task) {
    auto c = config();
    c.finish_grace_s = 1;
    service svc(repo, c, engine);
    auto t1 = multicast(hosts[0]);
    auto t2 = multicast(hosts[1]);
    svc.tick(now_s());
    boot(svc, hosts[0], t1.id);
    boot(svc, hosts[1], t2.id);
    engine->receivers = {static_cast<std::uint32_t>(t1.id)};
    svc.tick(now_s());
    auto sid = *task(t1.id).session_id;
    ASSERT_TRUE(wait_for([&] { return task(t1.id).progress.bytes_done == 1'000'000; }));
    ASSERT_TRUE(repo->transition_task(t1.id, store::task_state::complete, "verified"));
    ASSERT_TRUE(wait_for([&] {
        svc.tick(now_s());
        return repo->get_session(sid)->state == store::session_state::failed;
    }));
    EXPECT_EQ(task(t1.id).state, store::task_state::complete);
    auto t2_now = task(t2.id);
    EXPECT_EQ(t2_now.state, store::task_state::failed);
    auto events = repo->task_events(t2.id);
    ASSERT_TRUE(events);
    EXPECT_NE(events->back().message.find("did not report its image written and verified"),
              std::string::npos)
        << events->back().message;
}

TEST_F(fixture, wait_max_starts_with_whoever_joined_and_late_tasks_start_a_new_session) {
    auto c = config();
    c.wait_max_s = 60;
    service svc(repo, c, engine);
    auto t1 = multicast(hosts[0]);
    auto t2 = multicast(hosts[1]);
    svc.tick(now_s());
    boot(svc, hosts[0], t1.id);
    svc.tick(now_s());
    auto sid = *task(t1.id).session_id;
    EXPECT_EQ(repo->get_session(sid)->state, store::session_state::waiting);
    svc.tick(now_s() + 61);  // the fake clock passes wait_max_s
    EXPECT_EQ(repo->get_session(sid)->state, store::session_state::running);
    auto late = multicast(hosts[2]);
    svc.tick(now_s());
    ASSERT_TRUE(task(late.id).session_id);
    EXPECT_NE(*task(late.id).session_id, sid);
    EXPECT_EQ(repo->get_session(*task(late.id).session_id)->group, "239.77.0.2");
    svc.stop();
    (void)t2;
}

TEST_F(fixture, restart_mid_session_resumes_the_sender_with_state_intact) {
    engine->block = true;
    auto t1 = multicast(hosts[0]);
    auto t2 = multicast(hosts[1]);
    std::int64_t sid = 0;
    {
        service first(repo, config(), engine);
        first.tick(now_s());
        boot(first, hosts[0], t1.id);
        boot(first, hosts[1], t2.id);
        engine->receivers = {static_cast<std::uint32_t>(t1.id), static_cast<std::uint32_t>(t2.id)};
        first.tick(now_s());
        sid = *task(t1.id).session_id;
        ASSERT_TRUE(wait_for([&] { return task(t1.id).progress.bytes_done == 1'000'000; }));
        first.stop();  // shoald stops mid-session
    }
    EXPECT_EQ(engine->running.load(), 0);
    EXPECT_EQ(repo->get_session(sid)->state, store::session_state::running);
    EXPECT_EQ(task(t1.id).state, store::task_state::in_progress);
    EXPECT_EQ(task(t1.id).progress.bytes_done, 1'000'000);

    service second(repo, config(), engine);
    ASSERT_TRUE(second.start());
    ASSERT_TRUE(wait_for([&] { return engine->running.load() == 1; }));
    {
        std::lock_guard lock(engine->mutex);
        ASSERT_EQ(engine->runs.size(), 2U);
        EXPECT_EQ(engine->runs[1].session_id, sid);
        EXPECT_EQ(engine->runs[1].receivers_min, 2U);  // every open task's PC
        EXPECT_EQ(engine->runs[1].group, engine->runs[0].group);
    }
    // The PCs finish; cancel-free end.
    for (auto id : {t1.id, t2.id}) {
        ASSERT_TRUE(repo->transition_task(id, store::task_state::complete, "verified"));
    }
    // Every task final: the scheduler stops the sender, the session completes.
    ASSERT_TRUE(
        wait_for([&] { return repo->get_session(sid)->state == store::session_state::complete; }));
    second.stop();
}

TEST_F(fixture, cancel_a_session) {
    engine->block = true;
    service svc(repo, config(), engine);
    auto t1 = multicast(hosts[0]);
    svc.tick(now_s());
    boot(svc, hosts[0], t1.id);
    engine->receivers = {static_cast<std::uint32_t>(t1.id)};
    svc.tick(now_s());
    auto sid = *task(t1.id).session_id;
    ASSERT_TRUE(wait_for([&] { return engine->running.load() == 1; }));
    ASSERT_TRUE(svc.cancel_session(sid));
    EXPECT_EQ(task(t1.id).state, store::task_state::cancelled);
    ASSERT_TRUE(wait_for([&] {
        svc.tick(now_s());
        return repo->get_session(sid)->state == store::session_state::cancelled;
    }));
    EXPECT_EQ(engine->running.load(), 0);
    // A finished task's key gets nothing any more.
    store_task_source src(repo);
    auto b = src.pending_task(*ipxe::parse_mac(hosts[0].mac));
    ASSERT_TRUE(b);
    EXPECT_FALSE(*b);  // no open task: the menu
}

TEST_F(fixture, a_session_cancelled_in_the_store_stops_its_sender_and_cancels_its_tasks) {
    engine->block = true;
    service svc(repo, config(), engine);
    auto t1 = multicast(hosts[0]);
    auto t2 = multicast(hosts[1]);
    svc.tick(now_s());
    boot(svc, hosts[0], t1.id);
    boot(svc, hosts[1], t2.id);
    engine->receivers = {static_cast<std::uint32_t>(t1.id)};
    svc.tick(now_s());
    auto sid = *task(t1.id).session_id;
    ASSERT_TRUE(wait_for([&] { return engine->running.load() == 1; }));
    // What PATCH /api/v1/sessions/{id} {"state": "cancelled"} does.
    ASSERT_TRUE(repo->set_session_state(sid, store::session_state::cancelled));
    svc.tick(now_s());
    ASSERT_TRUE(wait_for([&] { return engine->running.load() == 0; }));
    ASSERT_TRUE(wait_for([&] {
        return task(t1.id).state == store::task_state::cancelled &&
               task(t2.id).state == store::task_state::cancelled;
    }));
    EXPECT_EQ(repo->get_session(sid)->state, store::session_state::cancelled);
}

TEST_F(fixture, schedules_make_tasks_for_hosts_and_groups) {
    service svc(repo, config(), engine);
    store::host_group g;
    g.name = "room204";
    g.hosts = {hosts[1].id, hosts[2].id};
    auto gm = repo->create_group(g);
    ASSERT_TRUE(gm) << gm.err().describe();
    store::schedule s;
    s.name = "nightly";
    s.kind = store::schedule_kind::cron;
    s.cron = "0 19 * * 1-5";
    s.task.kind = store::task_kind::multicast;
    s.task.image_id = img.id;
    s.hosts = {hosts[0].id, hosts[1].id};  // hosts[1] also in the group: one task
    s.groups = {gm->id};
    auto sm = repo->create_schedule(s);
    ASSERT_TRUE(sm) << sm.err().describe();
    // Monday 2026-01-05 10:00 UTC: the next run is 19:00 that day.
    const std::int64_t monday_10h = 1767571200 + 10 * 3600;
    svc.tick(monday_10h);
    auto after_first = repo->get_schedule(sm->id);
    ASSERT_TRUE(after_first);
    EXPECT_EQ(after_first->next_run_at, 1767571200 + 19 * 3600);
    store::task_filter all;
    EXPECT_EQ(*repo->count_tasks(all), 0);
    svc.tick(1767571200 + 19 * 3600);
    EXPECT_EQ(*repo->count_tasks(all), 3);
    auto ran = repo->get_schedule(sm->id);
    EXPECT_EQ(ran->last_run_at, 1767571200 + 19 * 3600);
    EXPECT_EQ(ran->next_run_at, 1767571200 + 86400 + 19 * 3600);  // Tuesday
    // Created tasks were placed in one session at once.
    auto list = repo->list_tasks(all, store::page{});
    ASSERT_TRUE(list);
    for (const auto& t : *list) {
        EXPECT_TRUE(t.session_id);
        EXPECT_EQ(t.session_id, list->front().session_id);
    }
    // A second run while those tasks are open makes none (one open task per host).
    svc.tick(1767571200 + 86400 + 19 * 3600);
    EXPECT_EQ(*repo->count_tasks(all), 3);
}

TEST_F(fixture, boot_script_task_carries_id_kind_key_and_image) {
    store::task t;
    t.kind = store::task_kind::deploy;
    t.host_id = hosts[3].id;
    t.image_id = img.id;
    auto made = repo->create_task(t);
    ASSERT_TRUE(made);
    store_task_source src(repo);
    auto b = src.pending_task(*ipxe::parse_mac(hosts[3].mac));
    ASSERT_TRUE(b && *b);
    EXPECT_EQ((*b)->type, std::to_string(made->id));
    std::map<std::string, std::string> args((*b)->args.begin(), (*b)->args.end());
    EXPECT_EQ(args["kind"], "deploy");
    EXPECT_EQ(args["image"], "lab-ext4");
    EXPECT_EQ(args["key"].size(), 64U);
    auto by_key = repo->get_task_by_key(args["key"]);
    ASSERT_TRUE(by_key);
    EXPECT_EQ(by_key->id, made->id);
    // Unknown MAC: the menu.
    auto none = src.pending_task(*ipxe::parse_mac("52:54:00:99:99:99"));
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
}

TEST(session_key, derived_per_session) {
    std::vector<std::byte> secret(32, std::byte{7});
    auto a = derive_session_key(secret, 1);
    auto b = derive_session_key(secret, 2);
    EXPECT_EQ(a.size(), 32U);
    EXPECT_NE(a, b);
    EXPECT_EQ(a, derive_session_key(secret, 1));
}

}  // namespace
}  // namespace shoal::control::tasks
