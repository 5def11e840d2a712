// udp_uring throughput over loopback: one instance sends 1472-byte packets to itself and
// receives them, so each iteration pays for both directions. GSO on and off.
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "common/clock.h"
#include "io/udp_uring.h"

namespace {

using shoal::io::packet;
using shoal::io::udp_config;
using shoal::io::udp_uring;

constexpr std::uint32_t packet_size = 1472;
constexpr std::size_t burst_count = 64;
// A burst that has not come back by then was lost: the benchmark stops with an error.
constexpr std::int64_t burst_timeout_ns = 1 * shoal::time::ns_per_s;

std::uint16_t free_udp_port() {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    socklen_t length = sizeof a;
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
    close(fd);
    return ntohs(a.sin_port);
}

void bm_loopback_send_receive(benchmark::State& state) {
    udp_config c;
    inet_pton(AF_INET, "127.0.0.1", &c.group);
    c.port = free_udp_port();
    c.use_gso = state.range(0) != 0;
    c.recv_buffer_count = 1024;
    c.send_buffer_count = 512;
    auto created = udp_uring::create(c);
    if (!created) {
        state.SkipWithError(created.err().describe().c_str());
        return;
    }
    udp_uring& io = **created;
    packet tx[burst_count];
    packet rx[burst_count];
    std::uint64_t seq = 0;
    for (auto _ : state) {
        const std::size_t got = io.alloc_burst(tx, burst_count);
        for (std::size_t i = 0; i < got; ++i) {
            std::memcpy(tx[i].data, &seq, sizeof seq);  // the rest is whatever was there
            ++seq;
            tx[i].size = packet_size;
        }
        std::size_t sent = 0;
        while (sent < got) {
            auto r = io.send_burst(tx + sent, got - sent);
            if (!r) {
                io.release_burst(tx + sent, got - sent);
                state.SkipWithError(r.err().describe().c_str());
                return;
            }
            sent += *r;
        }
        std::size_t received = 0;
        const shoal::time::deadline give_up = shoal::time::deadline::after_ns(burst_timeout_ns);
        while (received < sent) {
            auto r =
                io.recv_burst(rx, burst_count, give_up.remaining_ns(shoal::time::monotonic_ns()));
            if (!r || *r == 0) {
                state.SkipWithError(r ? "packets lost on loopback" : r.err().describe().c_str());
                return;
            }
            received += *r;
            io.release_burst(rx, *r);
        }
    }
    const auto packets = static_cast<std::int64_t>(state.iterations() * burst_count);
    state.SetItemsProcessed(packets);
    state.SetBytesProcessed(packets * packet_size);
    state.counters["send_calls_per_packet"] =
        static_cast<double>(io.stats().send_calls) / static_cast<double>(io.stats().packets_sent);
    state.SetLabel(io.gso_active() ? "gso" : "no gso");
}

BENCHMARK(bm_loopback_send_receive)->ArgName("gso")->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
