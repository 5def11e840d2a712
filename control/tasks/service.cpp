#include "tasks/service.h"

#include <arpa/inet.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "tasks/wol.h"

namespace shoal::control::tasks {

namespace {

constexpr std::int64_t list_limit = store::page::limit_max;
// A sender started for joined receivers gathers them for this long at most: they are
// already listening, so their first statuses come within an announce or two.
constexpr std::int64_t fresh_gather_ns = 10 * time::ns_per_s;

std::int64_t wall_now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool is_joined(store::task_state s) {
    return s == store::task_state::active || s == store::task_state::in_progress;
}

std::string hex(std::span<const std::byte> bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (std::byte b : bytes) {
        out += fmt::format("{:02x}", static_cast<unsigned>(b));
    }
    return out;
}

// Every task of a session (a session has at most a few hundred).
result<std::vector<store::task>> session_tasks(store::repository& repo, std::int64_t id) {
    store::task_filter f;
    f.session_id = id;
    return repo.list_tasks(f, store::page{list_limit, 0});
}

}  // namespace

std::vector<std::byte> derive_session_key(std::span<const std::byte> secret,
                                          std::int64_t session_id) {
    std::string label = fmt::format("shoal session {}", session_id);
    unsigned char out[32];
    unsigned int out_size = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(label.data()), label.size(), out, &out_size);
    std::vector<std::byte> key(out_size);
    std::memcpy(key.data(), out, out_size);
    return key;
}

struct service::runner {
    std::int64_t session_id = 0;
    bool resumed = false;
    std::atomic<bool> cancel{false};    // stop the sender
    std::atomic<bool> stopping{false};  // ... because shoald stops: leave it running in the store
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> bytes_total{0};
    std::atomic<std::uint64_t> bytes_done_sum{0};
    std::atomic<std::uint32_t> receivers{0};
    std::atomic<std::uint32_t> receivers_complete{0};
    std::thread thread;
};

service::service(std::shared_ptr<store::repository> repo, tasks_config config,
                 std::shared_ptr<sender_engine> engine)
    : _repo(std::move(repo)), _config(std::move(config)), _engine(std::move(engine)) {
    if (_config.session_secret.empty()) {
        // Without a kept secret, keys change when shoald restarts: the PCs ask for their
        // session again when the sender falls silent, so they still find it.
        _config.session_secret.resize(32);
        RAND_bytes(reinterpret_cast<unsigned char*>(_config.session_secret.data()), 32);
    }
}

service::~service() { stop(); }

status service::start() {
    std::lock_guard lock(_mutex);
    if (_scheduler.joinable()) {
        return ok();
    }
    _stopping = false;
    _scheduler = std::thread([this] {
        while (true) {
            tick(wall_now_s());
            std::unique_lock l(_mutex);
            _wake_cv.wait_for(l, std::chrono::milliseconds(_config.tick_ms),
                              [this] { return _stopping || _poked; });
            _poked = false;
            if (_stopping) {
                return;
            }
        }
    });
    return ok();
}

void service::stop() noexcept {
    {
        std::lock_guard lock(_mutex);
        _stopping = true;
        for (auto& [id, r] : _runners) {
            r->stopping = true;
            r->cancel = true;
        }
    }
    _wake_cv.notify_all();
    if (_scheduler.joinable()) {
        _scheduler.join();
    }
    std::map<std::int64_t, std::unique_ptr<runner>> runners;
    {
        std::lock_guard lock(_mutex);
        runners.swap(_runners);
    }
    for (auto& [id, r] : runners) {
        if (r->thread.joinable()) {
            r->thread.join();
        }
    }
}

void service::poke() noexcept {
    {
        std::lock_guard lock(_mutex);
        _poked = true;
    }
    _wake_cv.notify_all();
}

void service::tick(std::int64_t now_s) {
    std::lock_guard tick_lock(_tick_mutex);
    run_schedules(now_s);
    wake_tasks();
    place_multicast_tasks(now_s);
    start_sessions(now_s);
    reap_runners();
}

void service::run_schedules(std::int64_t now_s) {
    // A cron schedule made through the API has no next run yet: its first one is the
    // expression's next time after now.
    auto all = _repo->list_schedules(store::page{list_limit, 0});
    if (all) {
        for (auto& s : *all) {
            if (s.kind != store::schedule_kind::cron || !s.enabled || s.next_run_at) {
                continue;
            }
            auto expr = parse_cron(s.cron);
            if (!expr) {
                continue;  // the store validated it; a stricter parse is reported when due
            }
            s.next_run_at = next_run(*expr, now_s, _config.zone);
            if (s.next_run_at) {
                auto updated = _repo->update_schedule(s);
                if (!updated) {
                    log::warn("schedule {} ({}): setting its next run: {}", s.id, s.name,
                              updated.err().describe());
                }
            }
        }
    }
    auto due = _repo->schedules_due(now_s, _config.schedules_per_tick_max);
    if (!due) {
        log::warn("tasks: reading due schedules: {}", due.err().describe());
        return;
    }
    for (const auto& s : *due) {
        std::set<std::int64_t> hosts(s.hosts.begin(), s.hosts.end());
        for (auto gid : s.groups) {
            auto g = _repo->get_group(gid);
            if (!g) {
                log::warn("schedule {} ({}): group {}: {}", s.id, s.name, gid, g.err().describe());
                continue;
            }
            hosts.insert(g->hosts.begin(), g->hosts.end());
        }
        std::size_t made = 0;
        for (auto hid : hosts) {
            store::task t;
            t.kind = s.task.kind;
            t.host_id = hid;
            t.image_id = s.task.image_id;
            t.shutdown = s.task.shutdown;
            t.wol = s.task.wol;
            auto created = _repo->create_task(t, fmt::format("made by schedule {}", s.name));
            if (!created) {
                log::warn("schedule {} ({}): no task for host {}: {}", s.id, s.name, hid,
                          created.err().describe());
                continue;
            }
            ++made;
        }
        std::optional<std::int64_t> next;
        if (s.kind == store::schedule_kind::cron) {
            auto expr = parse_cron(s.cron);
            if (expr) {
                next = next_run(*expr, now_s, _config.zone);
            } else {
                log::warn("schedule {} ({}): {}; it will not run again until fixed", s.id, s.name,
                          expr.err().describe());
            }
        }
        auto marked = _repo->mark_schedule_run(s.id, now_s, next);
        if (!marked) {
            log::warn("schedule {} ({}): recording its run: {}", s.id, s.name,
                      marked.err().describe());
        }
        log::info("schedule {} ({}) ran: {} task(s) for {} host(s)", s.id, s.name, made,
                  hosts.size());
    }
}

void service::wake_tasks() {
    store::task_filter f;
    f.state = store::task_state::queued;
    auto queued = _repo->list_tasks(f, store::page{list_limit, 0});
    if (!queued) {
        return;
    }
    for (const auto& t : *queued) {
        if (!t.wol) {
            continue;
        }
        {
            std::lock_guard lock(_mutex);
            if (!_woken.insert(t.id).second) {
                continue;
            }
        }
        auto h = _repo->get_host(t.host_id);
        if (!h) {
            continue;
        }
        auto woke = wake(*h);
        if (!woke) {
            log::warn("task {}: Wake-on-LAN for {} ({}): {}", t.id, h->name, h->mac,
                      woke.err().describe());
        }
    }
}

status service::wake(const store::host& h) {
    auto mac = ipxe::parse_mac(h.mac);
    if (!mac) {
        return mac.err();
    }
    std::vector<in_addr> to = _config.wol_broadcasts;
    // The host's last known address, as its agent reported it: inventory.nics[].ipv4
    // ("10.77.1.5/16").
    auto inv = nlohmann::json::parse(h.inventory, nullptr, false);
    if (inv.is_object() && inv.contains("nics") && inv["nics"].is_array()) {
        for (const auto& nic : inv["nics"]) {
            if (!nic.is_object() || !nic.contains("ipv4") || !nic["ipv4"].is_string()) {
                continue;
            }
            std::string cidr = nic["ipv4"].get<std::string>();
            auto slash = cidr.find('/');
            unsigned prefix = 24;
            if (slash != std::string::npos) {
                prefix = static_cast<unsigned>(std::atoi(cidr.c_str() + slash + 1));
            }
            auto b = subnet_broadcast(cidr.substr(0, slash), prefix);
            if (b) {
                to.push_back(*b);
            }
        }
    }
    auto sent = tasks::wake(*mac, to, _config.wol_port);
    if (!sent) {
        return sent.err();
    }
    log::info("Wake-on-LAN: {} ({}) to {} address(es)", h.name, h.mac, sent->addresses_sent);
    if (sent->addresses_sent == 0) {
        return error::format(errc::io, 0,
                             "Wake-on-LAN for {}: no broadcast address could be "
                             "reached",
                             h.mac);
    }
    return ok();
}

void service::place_multicast_tasks(std::int64_t now_s) {
    store::task_filter f;
    f.kind = store::task_kind::multicast;
    f.open_only = true;
    auto open = _repo->list_tasks(f, store::page{list_limit, 0});
    if (!open) {
        log::warn("tasks: reading multicast tasks: {}", open.err().describe());
        return;
    }
    std::vector<const store::task*> loose;
    for (const auto& t : *open) {
        if (!t.session_id && t.image_id) {
            loose.push_back(&t);
        }
    }
    if (loose.empty()) {
        return;
    }
    store::session_filter sf;
    sf.state = store::session_state::waiting;
    auto waiting = _repo->list_sessions(sf, store::page{list_limit, 0});
    sf.state = store::session_state::running;
    auto running = _repo->list_sessions(sf, store::page{list_limit, 0});
    if (!waiting || !running) {
        return;
    }
    std::vector<waiting_session> plan;
    std::set<std::string> groups_used;
    for (const auto& s : *waiting) {
        plan.push_back({s.id, s.image_id, s.created_at, 0, 0, 0, 0});
        groups_used.insert(s.group);
    }
    for (const auto& s : *running) {
        groups_used.insert(s.group);
    }
    for (const store::task* t : loose) {
        auto join = session_to_join(plan, *t->image_id);
        std::int64_t sid = 0;
        if (join) {
            sid = *join;
        } else {
            store::session s;
            s.image_id = *t->image_id;
            s.port = _config.multicast.port;
            // The lowest group no open session uses.
            for (std::uint32_t slot = 0; slot < _config.multicast.slots; ++slot) {
                std::string g = session_group(_config.multicast, slot);
                if (groups_used.count(g) == 0) {
                    s.group = g;
                    break;
                }
            }
            if (s.group.empty()) {
                log::warn("tasks: every multicast group of the plan is in use; task {} waits",
                          t->id);
                continue;
            }
            s.receivers_min = _config.receivers_min;
            s.wait_max_s = _config.wait_max_s;
            s.rate_bps = static_cast<std::int64_t>(_config.rate_bps);
            auto made = _repo->create_session(s);
            if (!made) {
                log::warn("tasks: a session for task {}: {}", t->id, made.err().describe());
                continue;
            }
            sid = made->id;
            groups_used.insert(s.group);
            plan.push_back({sid, s.image_id, made->created_at, 0, 0, 0, 0});
            log::info("session {}: made for image {} on {}:{}", sid, s.image_id, s.group, s.port);
        }
        auto attached = _repo->attach_session_tasks(sid, {t->id});
        if (!attached) {
            log::warn("tasks: task {} into session {}: {}", t->id, sid, attached.err().describe());
        } else {
            log::info("session {}: task {} (host {}) joins", sid, t->id, t->host_id);
        }
    }
    (void)now_s;
}

void service::start_sessions(std::int64_t now_s) {
    store::session_filter sf;
    sf.state = store::session_state::running;
    auto running = _repo->list_sessions(sf, store::page{list_limit, 0});
    if (running) {
        for (const auto& s : *running) {
            auto tasks = session_tasks(*_repo, s.id);
            if (!tasks) {
                continue;
            }
            bool any_open = std::any_of(tasks->begin(), tasks->end(), [](const store::task& t) {
                return !store::is_final(t.state);
            });
            std::lock_guard lock(_mutex);
            auto it = _runners.find(s.id);
            if (it == _runners.end()) {
                if (_stopping) {
                    continue;
                }
                // Running in the store, no sender here: shoald restarted mid-session.
                launch(s, true);
            } else if (!any_open && !it->second->cancel) {
                log::info("session {}: every task is finished or cancelled; stopping its sender",
                          s.id);
                it->second->cancel = true;
            }
        }
    }
    // A session cancelled through the API (PATCH {"state": "cancelled"}) while its sender
    // runs: stop the sender.
    if (running) {
        std::set<std::int64_t> still_running;
        for (const auto& s : *running) {
            still_running.insert(s.id);
        }
        std::lock_guard lock(_mutex);
        for (auto& [id, r] : _runners) {
            if (still_running.count(id) == 0 && !r->done && !r->cancel) {
                log::info("session {}: no longer running in the store; stopping its sender", id);
                r->cancel = true;
            }
        }
    }
    sf.state = store::session_state::waiting;
    auto waiting = _repo->list_sessions(sf, store::page{list_limit, 0});
    if (!waiting) {
        return;
    }
    for (const auto& s : *waiting) {
        auto tasks = session_tasks(*_repo, s.id);
        if (!tasks) {
            continue;
        }
        waiting_session w{s.id,
                          s.image_id,
                          s.created_at,
                          static_cast<std::uint32_t>(std::max(s.receivers_min, 1)),
                          s.wait_max_s,
                          0,
                          0,
                          _config.gather_s};
        for (const auto& t : *tasks) {
            if (!store::is_final(t.state)) {
                ++w.tasks_count;
                w.joined_count += is_joined(t.state) ? 1 : 0;
            }
        }
        auto verdict = should_start(w, now_s);
        if (verdict.decision == start_decision::close_empty) {
            (void)_repo->set_session_state(s.id, store::session_state::cancelled);
            log::info("session {}: closed, {}", s.id, verdict.reason);
            continue;
        }
        if (verdict.decision == start_decision::wait) {
            continue;
        }
        std::lock_guard lock(_mutex);
        if (_stopping || _runners.size() >= _config.sessions_running_max) {
            continue;
        }
        auto started = _repo->set_session_state(s.id, store::session_state::running);
        if (!started) {
            log::warn("session {}: cannot start: {}", s.id, started.err().describe());
            continue;
        }
        log::info("session {}: starting, {}", s.id, verdict.reason);
        launch(*started, false);
    }
}

// Called with _mutex held.
void service::launch(const store::session& s, bool resumed) {
    auto r = std::make_unique<runner>();
    r->session_id = s.id;
    r->resumed = resumed;
    runner* raw = r.get();
    _runners.emplace(s.id, std::move(r));
    if (resumed) {
        log::info("session {}: was running when shoald stopped; sending again, receivers resume",
                  s.id);
    }
    raw->thread = std::thread([this, raw] {
        run_session(*raw);
        raw->done = true;
        poke();
    });
}

void service::reap_runners() {
    std::vector<std::unique_ptr<runner>> finished;
    {
        std::lock_guard lock(_mutex);
        for (auto it = _runners.begin(); it != _runners.end();) {
            if (it->second->done && !it->second->stopping) {
                finished.push_back(std::move(it->second));
                it = _runners.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& r : finished) {
        r->thread.join();
    }
}

void service::run_session(runner& r) {
    const std::int64_t sid = r.session_id;
    auto fail_session = [&](const std::string& why) {
        log::err("session {}: failed: {}", sid, why);
        auto tasks = session_tasks(*_repo, sid);
        if (tasks) {
            for (const auto& t : *tasks) {
                if (!store::is_final(t.state)) {
                    (void)_repo->transition_task(t.id, store::task_state::failed,
                                                 fmt::format("session {}: {}", sid, why));
                }
            }
        }
        (void)_repo->set_session_state(sid, store::session_state::failed);
    };
    auto s = _repo->get_session(sid);
    if (!s) {
        log::err("session {}: {}", sid, s.err().describe());
        return;
    }
    auto img = _repo->get_image(s->image_id);
    if (!img) {
        fail_session(fmt::format("image {}: {}", s->image_id, img.err().describe()));
        return;
    }
    auto tasks = session_tasks(*_repo, sid);
    if (!tasks) {
        log::err("session {}: {}", sid, tasks.err().describe());
        return;
    }
    std::uint32_t open = 0;
    std::uint32_t joined = 0;
    std::set<std::uint32_t> members;
    for (const auto& t : *tasks) {
        members.insert(static_cast<std::uint32_t>(t.id));
        if (!store::is_final(t.state)) {
            ++open;
            joined += is_joined(t.state) ? 1 : 0;
        }
    }

    sender_run run;
    run.session_id = sid;
    run.image_name = img->name;
    run.group = s->group;
    run.port = s->port;
    run.key = session_key(sid);
    run.rate_bps = s->rate_bps > 0 ? static_cast<std::uint64_t>(s->rate_bps) : _config.rate_bps;
    run.receivers_min = r.resumed ? open : std::max<std::uint32_t>(joined, 1);
    run.wait_max_ns = (r.resumed ? _config.resume_wait_s * time::ns_per_s : fresh_gather_ns);
    run.cancel = &r.cancel;

    struct last_seen {
        std::uint64_t bytes = 0;
        std::int64_t at_ns = 0;
        std::int64_t rate_Bps = 0;
        bool moved = false;
    };
    std::map<std::uint32_t, last_seen> seen;
    std::int64_t last_write_ns = 0;
    run.on_progress = [&](std::span<const receiver_figures> receivers, std::uint64_t total) {
        std::int64_t now = time::monotonic_ns();
        r.bytes_total = total;
        std::uint64_t sum = 0;
        std::uint32_t complete = 0;
        std::uint32_t count = 0;
        for (const auto& rf : receivers) {
            if (members.count(rf.id) != 0) {
                sum += rf.bytes_done;
                complete += rf.complete ? 1 : 0;
                ++count;
            }
        }
        r.bytes_done_sum = sum;
        r.receivers = count;
        r.receivers_complete = complete;
        if (now - last_write_ns < (_config.progress_interval_ms - 100) * time::ns_per_ms) {
            return;
        }
        last_write_ns = now;
        std::vector<std::pair<store::record_id, store::task_progress>> updates;
        for (const auto& rf : receivers) {
            if (members.count(rf.id) == 0) {
                continue;  // not one of ours (a stray receiver with the key): not written
            }
            auto& ls = seen[rf.id];
            if (ls.at_ns != 0 && now > ls.at_ns && rf.bytes_done >= ls.bytes) {
                ls.rate_Bps =
                    static_cast<std::int64_t>(static_cast<double>(rf.bytes_done - ls.bytes) * 1e9 /
                                              static_cast<double>(now - ls.at_ns));
            }
            ls.bytes = rf.bytes_done;
            ls.at_ns = now;
            store::task_progress p;
            p.bytes_done = static_cast<std::int64_t>(rf.bytes_done);
            p.bytes_total = static_cast<std::int64_t>(total);
            p.percent = total > 0 ? std::min(100.0, 100.0 * static_cast<double>(rf.bytes_done) /
                                                        static_cast<double>(total))
                                  : 0;
            p.rate_Bps = ls.rate_Bps;
            p.message = rf.failed     ? "receiver reports a failure"
                        : rf.complete ? "written; the PC is verifying"
                        : rf.lagging  ? fmt::format("receiving (lagging, loss {} ppm)", rf.loss_ppm)
                                      : fmt::format("receiving (loss {} ppm)", rf.loss_ppm);
            updates.emplace_back(rf.id, std::move(p));
            if (!ls.moved && rf.bytes_done > 0) {
                ls.moved = true;
                // active -> in_progress once bytes flow; the agent may have done it already.
                (void)_repo->transition_task(rf.id, store::task_state::in_progress,
                                             "receiving the image");
            }
        }
        if (!updates.empty()) {
            auto written = _repo->update_task_progress_batch(updates);
            if (!written) {
                log::warn("session {}: writing progress: {}", sid, written.err().describe());
            }
        }
    };

    log::info("session {}: sending image {} to {}:{} at {} bit/s, {} receiver(s) expected{}", sid,
              img->name, s->group, s->port, run.rate_bps, run.receivers_min,
              r.resumed ? " (resumed)" : "");
    auto outcome = _engine->run(run);
    if (r.stopping) {
        log::info("session {}: sender stopped with shoald; the session stays running", sid);
        return;
    }
    if (!outcome) {
        fail_session(outcome.err().describe());
        return;
    }
    log::info("session {}: sender done: {} bytes in {:.1f} s, {} receiver(s) complete{}", sid,
              outcome->bytes_total, outcome->seconds, outcome->complete,
              outcome->cancelled ? " (cancelled)" : "");
    // The PCs report complete once their image is verified: give them time to.
    auto grace = time::deadline::after_ns(_config.finish_grace_s * time::ns_per_s);
    while (!grace.expired() && !r.stopping) {
        auto ts = session_tasks(*_repo, sid);
        if (ts && std::all_of(ts->begin(), ts->end(),
                              [](const store::task& t) { return store::is_final(t.state); })) {
            break;
        }
        time::sleep_for_ns(200 * time::ns_per_ms);
    }
    if (r.stopping) {
        return;
    }
    auto now_session = _repo->get_session(sid);
    if (now_session && store::is_final(now_session->state)) {
        // Ended from outside (cancelled through the API): its open tasks end with it.
        auto open_tasks = session_tasks(*_repo, sid);
        if (open_tasks) {
            for (const auto& t : *open_tasks) {
                if (!store::is_final(t.state)) {
                    (void)_repo->transition_task(t.id, store::task_state::cancelled,
                                                 fmt::format("session {} was {}", sid,
                                                             store::to_string(now_session->state)));
                }
            }
        }
        log::info("session {}: {}", sid, store::to_string(now_session->state));
        return;
    }
    auto final_tasks = session_tasks(*_repo, sid);
    bool all_complete = true;
    bool any_cancelled = false;
    if (final_tasks) {
        for (const auto& t : *final_tasks) {
            if (!store::is_final(t.state)) {
                std::uint64_t had = 0;
                for (const auto& rf : outcome->receivers) {
                    if (rf.id == static_cast<std::uint32_t>(t.id)) {
                        had = rf.bytes_done;
                    }
                }
                (void)_repo->transition_task(
                    t.id, store::task_state::failed,
                    fmt::format("session {} ended and this PC did not report its image written "
                                "and verified (the sender saw {} of {} bytes)",
                                sid, had, outcome->bytes_total));
                all_complete = false;
            } else if (t.state != store::task_state::complete) {
                all_complete = false;
                any_cancelled |= t.state == store::task_state::cancelled;
            }
        }
    }
    auto state = all_complete                            ? store::session_state::complete
                 : (outcome->cancelled || any_cancelled) ? store::session_state::cancelled
                                                         : store::session_state::failed;
    auto set = _repo->set_session_state(sid, state);
    if (!set) {
        log::warn("session {}: recording its end: {}", sid, set.err().describe());
    }
    log::info("session {}: {}", sid, store::to_string(state));
}

status service::cancel_session(std::int64_t session_id) {
    auto s = _repo->get_session(session_id);
    if (!s) {
        return s.err();
    }
    auto tasks = session_tasks(*_repo, session_id);
    if (tasks) {
        for (const auto& t : *tasks) {
            if (!store::is_final(t.state)) {
                (void)_repo->transition_task(t.id, store::task_state::cancelled,
                                             "the session was cancelled");
            }
        }
    }
    bool has_runner = false;
    {
        std::lock_guard lock(_mutex);
        auto it = _runners.find(session_id);
        if (it != _runners.end()) {
            it->second->cancel = true;
            has_runner = true;
        }
    }
    if (!has_runner && !store::is_final(s->state)) {
        SHOAL_RETURN_IF_ERROR(
            _repo->set_session_state(session_id, store::session_state::cancelled));
    }
    poke();
    return ok();
}

result<client_session> service::session_for_key(std::string_view task_key, std::int64_t now_s) {
    (void)now_s;
    auto t = _repo->get_task_by_key(task_key);
    if (!t) {
        return t.err();
    }
    if (store::is_final(t->state)) {
        return error::format(errc::conflict, 0, "task {} is {}", t->id, store::to_string(t->state));
    }
    if (t->state == store::task_state::queued) {
        auto moved =
            _repo->transition_task(t->id, store::task_state::active, "the PC took its task");
        if (moved) {
            t = std::move(moved);
        }
        poke();
    }
    client_session out;
    out.task_id = t->id;
    out.task_state = std::string(store::to_string(t->state));
    if (t->image_id) {
        auto img = _repo->get_image(*t->image_id);
        if (img) {
            out.image = img->name;
        }
    }
    if (t->kind != store::task_kind::multicast || !t->session_id) {
        return out;
    }
    auto s = _repo->get_session(*t->session_id);
    if (!s) {
        return s.err();
    }
    out.session_id = s->id;
    out.session_state = std::string(store::to_string(s->state));
    out.group = s->group;
    out.port = s->port;
    out.key_hex = hex(session_key(s->id));
    return out;
}

std::vector<std::byte> service::session_key(std::int64_t session_id) const {
    return derive_session_key(_config.session_secret, session_id);
}

void service::write_metrics(std::string& out) const {
    out +=
        "# HELP shoal_session_bytes_total Raw bytes of the image a running session sends.\n"
        "# TYPE shoal_session_bytes_total gauge\n";
    std::string done =
        "# HELP shoal_session_receiver_bytes Bytes its receivers have written, "
        "summed.\n# TYPE shoal_session_receiver_bytes gauge\n";
    std::string recv =
        "# HELP shoal_session_receivers Receivers a running session hears.\n"
        "# TYPE shoal_session_receivers gauge\n";
    std::lock_guard lock(_mutex);
    for (const auto& [id, r] : _runners) {
        out += fmt::format("shoal_session_bytes_total{{session=\"{}\"}} {}\n", id,
                           r->bytes_total.load());
        done += fmt::format("shoal_session_receiver_bytes{{session=\"{}\"}} {}\n", id,
                            r->bytes_done_sum.load());
        recv +=
            fmt::format("shoal_session_receivers{{session=\"{}\"}} {}\n", id, r->receivers.load());
    }
    out += done;
    out += recv;
}

std::size_t service::senders_running() const {
    std::lock_guard lock(_mutex);
    std::size_t n = 0;
    for (const auto& [id, r] : _runners) {
        n += r->done ? 0 : 1;
    }
    return n;
}

result<std::optional<ipxe::boot_task>> store_task_source::pending_task(
    const ipxe::mac_address& mac) {
    auto h = _repo->get_host_by_mac(mac.to_string());
    if (!h) {
        if (h.err().code() == errc::not_found) {
            return std::optional<ipxe::boot_task>{};
        }
        return h.err();
    }
    auto t = _repo->open_task_for_host(h->id);
    if (!t) {
        return t.err();
    }
    if (!*t || (*t)->kind == store::task_kind::wol) {
        return std::optional<ipxe::boot_task>{};  // the menu
    }
    const store::task& task = **t;
    auto key = _repo->issue_task_key(task.id);
    if (!key) {
        return key.err();
    }
    ipxe::boot_task b;
    // The script writes shoal.task=<type>: the id is what the client OS needs there.
    b.type = std::to_string(task.id);
    b.args.emplace_back("kind", std::string(store::to_string(task.kind)));
    b.args.emplace_back("key", *key);
    if (task.image_id) {
        auto img = _repo->get_image(*task.image_id);
        if (img) {
            b.args.emplace_back("image", img->name);
        }
    }
    b.args.emplace_back("shutdown", std::string(store::to_string(task.shutdown)));
    if (!task.disk.empty()) {
        b.args.emplace_back("disk", task.disk);  // the agent's disk rule (docs/agent.md)
    }
    SHOAL_RETURN_IF_ERROR(ipxe::validate_task(b));
    return std::optional<ipxe::boot_task>{std::move(b)};
}

}  // namespace shoal::control::tasks
