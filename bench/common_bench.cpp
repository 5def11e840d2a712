// Costs of the building blocks every packet passes through: a buffer from the pool and a
// hop through an SPSC ring, in bursts as the data path uses them.
#include <benchmark/benchmark.h>

#include <thread>

#include "common/pool.h"
#include "common/ring.h"

namespace {

void pool_get_put_burst(benchmark::State& state) {
    const auto burst = static_cast<std::size_t>(state.range(0));
    auto pool = shoal::buffer_pool::create(2048, 4096);
    if (!pool) {
        state.SkipWithError(pool.err().describe().c_str());
        return;
    }
    std::byte* buffers[256];
    for (auto _ : state) {
        const std::size_t n = pool->get_burst(buffers, burst);
        benchmark::DoNotOptimize(buffers[0]);
        pool->put_burst(buffers, n);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(burst));
}
BENCHMARK(pool_get_put_burst)->Arg(1)->Arg(32)->Arg(256);

// Items per second across two threads (producer here, consumer on the other core).
void spsc_ring_cross_thread(benchmark::State& state) {
    const auto burst = static_cast<std::size_t>(state.range(0));
    shoal::spsc_ring<std::uintptr_t> ring(4096);
    std::atomic<bool> stop{false};
    std::thread consumer([&] {
        std::uintptr_t out[256];
        while (!stop.load(std::memory_order_relaxed)) {
            ring.dequeue_burst(out, burst);
        }
    });
    std::uintptr_t items[256] = {};
    std::int64_t moved = 0;
    for (auto _ : state) {
        moved += static_cast<std::int64_t>(ring.enqueue_burst(items, burst));
    }
    stop = true;
    consumer.join();
    state.SetItemsProcessed(moved);
}
BENCHMARK(spsc_ring_cross_thread)->Arg(1)->Arg(32)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
