// control::tasks::service: what shoald runs to turn tasks into boot scripts and multicast
// sessions (docs/control.md, "Tasks and sessions").
//
// One scheduler thread looks at the store every tick: due schedules make tasks (and wake
// their hosts when the template says wol), tasks with wol wake their hosts once, queued
// multicast tasks join a waiting session of their image or start one, waiting sessions
// start by the planner's rules (planner.h), and a session that is running without a
// sender (shoald restarted) gets one again. Each running session has its own thread that
// runs the engine's sender for its image and writes every receiver's progress into its
// task about once a second; the receiver id is the task id.
//
// All state is in the store: a shoald restarted mid-session reads it back, the PCs'
// receivers time out on the silent sender, ask for their task again and rejoin with
// --resume.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "ipxe/mac.h"
#include "ipxe/task_source.h"
#include "store/model.h"
#include "store/repository.h"
#include "tasks/cron.h"
#include "tasks/planner.h"

namespace shoal::control::tasks {

struct tasks_config {
    std::string image_store;      // the engine's chunk store (shoal image capture's --store)
    multicast_plan multicast;     // groups and port of sessions
    std::string interface_name;   // the sender's interface ("" = by route)
    in_addr interface_address{};  // or its address (0 = any)
    int ttl = 1;
    std::uint64_t rate_bps = 900'000'000;  // a session's pace when it names none
    // A new session starts when this many of its hosts joined (above the session's task
    // count means all of them, the default) or after wait_max_s.
    std::int32_t receivers_min = 100000;
    std::int32_t wait_max_s = 600;
    // A new session gathers tasks this long before it may start (planner.h).
    std::int64_t gather_s = 5;
    std::vector<in_addr> wol_broadcasts;  // besides each host's last known subnet broadcast
    std::uint16_t wol_port = 9;
    cron_zone zone = cron_zone::utc;
    std::int64_t tick_ms = 500;                // how often the store is looked at
    std::int64_t progress_interval_ms = 1000;  // receivers' progress written this often
    // After a sender ends, how long its PCs have to report their image verified before
    // their tasks are failed.
    std::int64_t finish_grace_s = 30;
    // How long a restarted sender gathers the receivers it had before it goes on.
    std::int64_t resume_wait_s = 20;
    // Keys every session's HMAC key (HMAC-SHA256(secret, "shoal session <id>")), so a
    // restarted shoald gives a session the same key. 32 random bytes, kept by shoald.
    std::vector<std::byte> session_secret;
    std::size_t sessions_running_max = 16;  // more wait (each is a sender thread)
    std::size_t schedules_per_tick_max = 64;
};

// One receiver's figures as the sender reports them.
struct receiver_figures {
    std::uint32_t id = 0;  // the task id
    std::uint64_t bytes_done = 0;
    std::uint32_t loss_ppm = 0;
    bool complete = false;
    bool lagging = false;
    bool failed = false;
};

struct sender_run {
    std::int64_t session_id = 0;  // the store's
    std::string image_name;
    std::string group;
    std::uint16_t port = 0;
    std::vector<std::byte> key;
    std::uint64_t rate_bps = 0;
    std::uint32_t receivers_min = 0;  // the sender gathers this many ...
    std::int64_t wait_max_ns = 0;     // ... or waits this long
    // About once a second: every receiver heard so far and the bytes each writes.
    std::function<void(std::span<const receiver_figures>, std::uint64_t bytes_total)> on_progress;
    const std::atomic<bool>* cancel = nullptr;
};

struct sender_outcome {
    std::uint64_t bytes_total = 0;
    double seconds = 0;
    std::size_t complete = 0;
    bool cancelled = false;
    std::vector<receiver_figures> receivers;
};

// The engine's sender as a session runner drives it: engine_sender.h has the real one
// (engine/deploy over the image store); tests pass their own.
class sender_engine {
public:
    virtual ~sender_engine() = default;
    // Runs one session to its end on the calling thread.
    virtual result<sender_outcome> run(const sender_run& run) = 0;
};

// What a PC's agent needs to join its session (GET /client/session).
struct client_session {
    std::int64_t task_id = 0;
    std::string task_state;
    std::optional<std::int64_t> session_id;
    std::string session_state;  // waiting, running, ... ("" without a session yet)
    std::string image;
    std::string group;
    std::uint16_t port = 0;
    std::string key_hex;  // the session's HMAC key
};

class service {
public:
    service(std::shared_ptr<store::repository> repo, tasks_config config,
            std::shared_ptr<sender_engine> engine);
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    // Starts the scheduler thread (which starts session threads).
    status start();
    // Stops sending (sessions stay running in the store, to be resumed by the next start)
    // and joins every thread.
    void stop() noexcept;

    // One look at the store at `now_s` (Unix seconds): schedules, wake-ups, sessions. The
    // scheduler thread calls it every tick; tests call it with a fake clock.
    void tick(std::int64_t now_s);
    // Wakes the scheduler now (a task was created or cancelled through the API).
    void poke() noexcept;

    // Sends the magic packet to the configured broadcasts and the host's last known subnet.
    status wake(const store::host& h);

    // Cancels a session: its sender stops, its open tasks are cancelled.
    status cancel_session(std::int64_t session_id);

    // The session parameters of the task a PC's key belongs to; the first call of a queued
    // task moves it to active (the PC took it: it counts as joined). errc::denied for a
    // wrong key, errc::conflict for a finished task.
    result<client_session> session_for_key(std::string_view task_key, std::int64_t now_s);

    // The session's HMAC key.
    std::vector<std::byte> session_key(std::int64_t session_id) const;

    // Prometheus lines: per running session bytes and receivers.
    void write_metrics(std::string& out) const;

    // Sessions whose sender thread runs (tests).
    std::size_t senders_running() const;

private:
    struct runner;
    void run_schedules(std::int64_t now_s);
    void wake_tasks();
    void place_multicast_tasks(std::int64_t now_s);
    void start_sessions(std::int64_t now_s);
    void reap_runners();
    void launch(const store::session& s, bool resumed);
    void run_session(runner& r);

    std::shared_ptr<store::repository> _repo;
    tasks_config _config;
    std::shared_ptr<sender_engine> _engine;

    mutable std::mutex _mutex;  // _runners, _woken, _tick
    std::condition_variable _wake_cv;
    bool _poked = false;
    bool _stopping = false;
    std::thread _scheduler;
    std::map<std::int64_t, std::unique_ptr<runner>> _runners;  // by session id
    std::set<std::int64_t> _woken;                             // tasks woken since start
    std::mutex _tick_mutex;                                    // one tick at a time
};

// GET /boot?mac= over the store: the host's open task becomes a script that boots the
// client OS with shoal.task=<task id>, shoal.kind=<kind>, shoal.key=<a fresh per-task
// secret> (and shoal.image=<name> for image tasks). Hosts without an open task get the menu.
class store_task_source final : public ipxe::task_source {
public:
    explicit store_task_source(std::shared_ptr<store::repository> repo) : _repo(std::move(repo)) {}
    result<std::optional<ipxe::boot_task>> pending_task(const ipxe::mac_address& mac) override;

private:
    std::shared_ptr<store::repository> _repo;
};

// HMAC-SHA256(secret, "shoal session <id>").
std::vector<std::byte> derive_session_key(std::span<const std::byte> secret,
                                          std::int64_t session_id);

}  // namespace shoal::control::tasks
