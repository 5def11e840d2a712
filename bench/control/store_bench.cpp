// The repository calls shoald makes most: the task list (the console polls it) and a host
// by MAC (every PC that boots), with hundreds of hosts, on SQLite (a file) and PostgreSQL
// (a private cluster, tests/control/pg_fixture.h; needs root, else that half is skipped).
// Items are calls (progress_batch: tasks updated), per second of wall time (PostgreSQL
// works in its own processes). Run: build/bench/control/store_bench
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "pg_fixture.h"
#include "store/repository.h"

namespace {

using namespace shoal;
using namespace shoal::store;

constexpr int host_count = 500;

struct fixture {
    std::unique_ptr<repository> repo;
    std::string error;
    std::string dir;  // SQLite's, removed at exit

    fixture() = default;
    fixture(const fixture&) = delete;
    fixture& operator=(const fixture&) = delete;
    ~fixture() {
        repo.reset();
        if (!dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    }
};

std::string mac_of(int i) { return fmt::format("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff); }

// One populated repository per backend, made on first use: host_count hosts, each with a
// queued deploy task, half of them moved on to in_progress with progress.
fixture& get(const std::string& backend) {
    static std::map<std::string, fixture> all;
    auto [it, fresh] = all.try_emplace(backend);
    fixture& f = it->second;
    if (!fresh) {
        return f;
    }
    auto store = test::make_test_store(backend, "shoal-bench");
    f.dir = store.dir;
    if (!store.skip.empty() || !store.error.empty()) {
        f.error = !store.skip.empty() ? "PostgreSQL: " + store.skip : store.error;
        return f;
    }
    const std::string& url = store.url;
    open_options o;
    o.cheap_password_hash = true;
    auto r = open_repository(url, o);
    if (!r) {
        f.error = r.err().describe();
        return f;
    }
    f.repo = std::move(*r);
    image img;
    img.name = "win11-lab";
    auto created = f.repo->create_image(img);
    std::vector<host> hosts;
    for (int i = 0; i < host_count; ++i) {
        host h;
        h.mac = mac_of(i);
        h.name = fmt::format("pc{}", i);
        hosts.push_back(h);
    }
    if (!created || !f.repo->import_hosts(hosts)) {
        f.error = "populating failed";
        f.repo.reset();
        return f;
    }
    auto listed = f.repo->list_hosts({}, {.limit = page::limit_max, .offset = 0});
    for (const host& h : *listed) {
        task t;
        t.kind = task_kind::deploy;
        t.host_id = h.id;
        t.image_id = created->id;
        auto tk = f.repo->create_task(t);
        if (tk && h.id % 2 == 0) {
            (void)f.repo->transition_task(tk->id, task_state::in_progress);
            task_progress p;
            p.percent = 50;
            (void)f.repo->update_task_progress(tk->id, p);
        }
    }
    return f;
}

void list_tasks(benchmark::State& state, const std::string& backend) {
    fixture& f = get(backend);
    if (!f.repo) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    const auto limit = state.range(0);
    for (auto _ : state) {
        auto r = f.repo->list_tasks({}, {.limit = limit, .offset = 0});
        if (!r ||
            static_cast<std::int64_t>(r->size()) != std::min<std::int64_t>(limit, host_count)) {
            state.SkipWithError("list_tasks failed");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
}

void list_tasks_in_progress(benchmark::State& state, const std::string& backend) {
    fixture& f = get(backend);
    if (!f.repo) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    for (auto _ : state) {
        auto r =
            f.repo->list_tasks({.state = task_state::in_progress}, {.limit = 100, .offset = 0});
        if (!r || r->size() != 100) {
            state.SkipWithError("list_tasks failed");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
}

void host_by_mac(benchmark::State& state, const std::string& backend) {
    fixture& f = get(backend);
    if (!f.repo) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    int i = 0;
    for (auto _ : state) {
        auto r = f.repo->get_host_by_mac(mac_of(i));
        if (!r) {
            state.SkipWithError("get_host_by_mac failed");
            break;
        }
        benchmark::DoNotOptimize(r);
        i = (i + 7) % host_count;
    }
    state.SetItemsProcessed(state.iterations());
}

void open_task_for_host(benchmark::State& state, const std::string& backend) {
    fixture& f = get(backend);
    if (!f.repo) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    record_id id = 1;
    for (auto _ : state) {
        auto r = f.repo->open_task_for_host(id);
        if (!r) {
            state.SkipWithError("open_task_for_host failed");
            break;
        }
        benchmark::DoNotOptimize(r);
        id = id % host_count + 1;
    }
    state.SetItemsProcessed(state.iterations());
}

void progress_batch(benchmark::State& state, const std::string& backend) {
    fixture& f = get(backend);
    if (!f.repo) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    // A session's report each second: every in-progress receiver's figures, one transaction.
    auto tasks = f.repo->list_tasks({.state = task_state::in_progress},
                                    {.limit = page::limit_max, .offset = 0});
    std::vector<std::pair<record_id, task_progress>> updates;
    for (const task& t : *tasks) {
        task_progress p;
        p.percent = 60;
        p.bytes_done = t.id * 1000;
        updates.emplace_back(t.id, p);
    }
    for (auto _ : state) {
        auto r = f.repo->update_task_progress_batch(updates);
        if (!r || *r != updates.size()) {
            state.SkipWithError("update_task_progress_batch failed");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(updates.size()));
}

}  // namespace

BENCHMARK_CAPTURE(list_tasks, sqlite, std::string("sqlite"))->Arg(100)->Arg(500)->UseRealTime();
BENCHMARK_CAPTURE(list_tasks, postgresql, std::string("postgresql"))
    ->Arg(100)
    ->Arg(500)
    ->UseRealTime();
BENCHMARK_CAPTURE(list_tasks_in_progress, sqlite, std::string("sqlite"))->UseRealTime();
BENCHMARK_CAPTURE(list_tasks_in_progress, postgresql, std::string("postgresql"))->UseRealTime();
BENCHMARK_CAPTURE(host_by_mac, sqlite, std::string("sqlite"))->UseRealTime();
BENCHMARK_CAPTURE(host_by_mac, postgresql, std::string("postgresql"))->UseRealTime();
BENCHMARK_CAPTURE(open_task_for_host, sqlite, std::string("sqlite"))->UseRealTime();
BENCHMARK_CAPTURE(open_task_for_host, postgresql, std::string("postgresql"))->UseRealTime();
BENCHMARK_CAPTURE(progress_batch, sqlite, std::string("sqlite"))->UseRealTime();
BENCHMARK_CAPTURE(progress_batch, postgresql, std::string("postgresql"))->UseRealTime();

BENCHMARK_MAIN();
