// Session grouping and start rules with a fake clock: tasks for one image queued together
// share a session; it starts at receivers_min joined or after wait_max_s with someone in
// it; late tasks join a waiting session or start a new one.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "tasks/planner.h"

namespace shoal::control::tasks {
namespace {

// A tiny simulation of what the service does with the store, driven by a fake clock.
struct fake_store {
    struct session {
        waiting_session w;
        bool running = false;
        bool closed = false;
    };
    std::map<std::int64_t, session> sessions;
    std::map<std::int64_t, std::int64_t> task_session;  // task -> session
    std::int64_t next_id = 1;
    std::int64_t now_s = 1000;

    std::int64_t queue(std::int64_t task, std::int64_t image, std::uint32_t receivers_min = 0,
                       std::int64_t wait_max_s = 300) {
        std::vector<waiting_session> waiting;
        for (auto& [id, s] : sessions) {
            if (!s.running && !s.closed) {
                waiting.push_back(s.w);
            }
        }
        auto join = session_to_join(waiting, image);
        std::int64_t id = join ? *join : next_id++;
        if (!join) {
            sessions[id].w = waiting_session{id, image, now_s, receivers_min, wait_max_s, 0, 0};
        }
        sessions[id].w.tasks_count += 1;
        task_session[task] = id;
        return id;
    }
    void join(std::int64_t task) { sessions[task_session.at(task)].w.joined_count += 1; }
    // One tick of the service: returns the sessions started.
    std::vector<std::int64_t> tick() {
        std::vector<std::int64_t> started;
        for (auto& [id, s] : sessions) {
            if (s.running || s.closed) {
                continue;
            }
            auto v = should_start(s.w, now_s);
            if (v.decision == start_decision::start_joined ||
                v.decision == start_decision::start_timeout) {
                s.running = true;
                started.push_back(id);
            } else if (v.decision == start_decision::close_empty) {
                s.closed = true;
            }
        }
        return started;
    }
};

TEST(planner, same_image_tasks_share_a_session_and_start_when_all_joined) {
    fake_store st;
    auto a = st.queue(1, 7);
    auto b = st.queue(2, 7);
    auto c = st.queue(3, 7);
    auto other = st.queue(4, 8);
    EXPECT_EQ(a, b);
    EXPECT_EQ(a, c);
    EXPECT_NE(a, other);
    st.join(1);
    st.join(2);
    st.now_s += 10;
    EXPECT_TRUE(st.tick().empty());  // 2 of 3, receivers_min 0 means all
    st.join(3);
    EXPECT_EQ(st.tick(), std::vector<std::int64_t>{a});
    // A late task for the same image: the first session is running, so a new one.
    auto late = st.queue(5, 7);
    EXPECT_NE(late, a);
    // ... and a task soon after it joins that waiting session.
    EXPECT_EQ(st.queue(6, 7), late);
}

TEST(planner, receivers_min_and_wait_max) {
    fake_store st;
    auto s = st.queue(1, 7, 2, 120);
    st.queue(2, 7);
    st.queue(3, 7);
    st.queue(4, 7);
    st.join(1);
    st.now_s += 119;
    EXPECT_TRUE(st.tick().empty());
    auto v = should_start(st.sessions[s].w, st.now_s);
    EXPECT_EQ(v.decision, start_decision::wait);
    EXPECT_NE(v.reason.find("1 of 4 receivers joined, waiting for 2"), std::string::npos)
        << v.reason;
    st.now_s += 1;  // wait_max_s reached with one receiver in it
    v = should_start(st.sessions[s].w, st.now_s);
    EXPECT_EQ(v.decision, start_decision::start_timeout);
    EXPECT_NE(v.reason.find("waited 120 s"), std::string::npos) << v.reason;
}

TEST(planner, receivers_min_reached_before_the_timeout) {
    fake_store st;
    auto s = st.queue(1, 7, 2, 600);
    st.queue(2, 7);
    st.queue(3, 7);
    st.join(3);
    st.join(1);
    EXPECT_EQ(st.tick(), std::vector<std::int64_t>{s});
}

TEST(planner, receivers_min_above_the_task_count_is_the_task_count) {
    waiting_session w{1, 7, 0, 10, 600, 2, 2};
    EXPECT_EQ(should_start(w, 1).decision, start_decision::start_joined);
}

TEST(planner, a_new_session_gathers_tasks_before_it_starts_on_its_joined_count) {
    // One task, its PC joined at once: with gather_s the session waits for the room's
    // other tasks, made a moment later, instead of starting alone.
    waiting_session w{1, 7, 100, 0, 600, 1, 1, 5};
    auto v = should_start(w, 102);
    EXPECT_EQ(v.decision, start_decision::wait);
    EXPECT_NE(v.reason.find("gathering tasks for 3 s more"), std::string::npos) << v.reason;
    w.tasks_count = 4;
    w.joined_count = 4;
    EXPECT_EQ(should_start(w, 104).decision, start_decision::wait);
    EXPECT_EQ(should_start(w, 105).decision, start_decision::start_joined);
}

TEST(planner, nobody_joined_keeps_waiting_past_the_timeout) {
    waiting_session w{1, 7, 0, 0, 60, 3, 0};
    auto v = should_start(w, 1000);
    EXPECT_EQ(v.decision, start_decision::wait);
    EXPECT_NE(v.reason.find("no receiver has joined"), std::string::npos);
}

TEST(planner, empty_session_is_closed) {
    waiting_session w{1, 7, 0, 0, 60, 0, 0};
    EXPECT_EQ(should_start(w, 0).decision, start_decision::close_empty);
}

TEST(planner, oldest_waiting_session_is_filled_first) {
    std::vector<waiting_session> waiting{
        {5, 7, 200, 0, 60, 1, 0}, {3, 7, 100, 0, 60, 1, 0}, {4, 8, 50, 0, 60, 1, 0}};
    EXPECT_EQ(session_to_join(waiting, 7), 3);
    EXPECT_EQ(session_to_join(waiting, 8), 4);
    EXPECT_EQ(session_to_join(waiting, 9), std::nullopt);
}

TEST(planner, groups_are_distinct_per_session) {
    multicast_plan plan;
    EXPECT_EQ(session_group(plan, 0), "239.77.0.1");
    EXPECT_EQ(session_group(plan, 1), "239.77.0.2");
    EXPECT_EQ(session_group(plan, 300), "239.77.1.45");
    EXPECT_EQ(session_group(plan, 4096), "239.77.0.1");  // wraps after `slots`
}

}  // namespace
}  // namespace shoal::control::tasks
