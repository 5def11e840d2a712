// udp_uring across a real link: two network namespaces joined by a veth pair, a sender in
// one and two receivers in the other, all in one process (a socket keeps the namespace it
// was made in, so the test enters each namespace only to create its endpoints).
// Needs root and `ip netns`; skips otherwise. Namespace names carry the PID so parallel runs
// do not clash, and they are removed on every exit path, signals included.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "io/udp_uring.h"
#include "io_test_support.h"

namespace shoal::io {
namespace {

using test::receive_numbered;
using test::send_numbered;

// The whole test gives up after this, well inside meson's timeout.
constexpr std::int64_t test_budget_ns = 40 * time::ns_per_s;

// Paths of the namespaces this process made, for the signal handler: it may only make
// system calls, so it detaches and unlinks the bind mounts as `ip netns del` would.
char g_netns_paths[2][64];
int g_netns_path_count = 0;

extern "C" void remove_netns_and_die(int signal_number) {
    for (int i = 0; i < g_netns_path_count; ++i) {
        umount2(g_netns_paths[i], MNT_DETACH);
        unlink(g_netns_paths[i]);
    }
    std::signal(signal_number, SIG_DFL);
    raise(signal_number);
}

bool run(const std::string& command) {
    const int status = std::system((command + " >/dev/null 2>&1").c_str());
    return status == 0;
}

// Two namespaces joined by a veth pair: "shoal0" (10.77.1.1/16) in tx, "shoal1"
// (10.77.1.2/16) in rx.
class veth_pair {
public:
    veth_pair() {
        const std::string pid = std::to_string(getpid());
        _tx = "shoal-tx-" + pid;
        _rx = "shoal-rx-" + pid;
        remove();  // a leftover from a crashed run with a reused PID
        std::snprintf(g_netns_paths[0], sizeof g_netns_paths[0], "/run/netns/%s", _tx.c_str());
        std::snprintf(g_netns_paths[1], sizeof g_netns_paths[1], "/run/netns/%s", _rx.c_str());
        g_netns_path_count = 2;
        std::signal(SIGTERM, remove_netns_and_die);
        std::signal(SIGINT, remove_netns_and_die);
        _ok = run("ip netns add " + _tx) && run("ip netns add " + _rx) &&
              run("ip link add shoal0 netns " + _tx + " type veth peer name shoal1 netns " + _rx) &&
              run("ip -n " + _tx + " addr add 10.77.1.1/16 brd + dev shoal0") &&
              run("ip -n " + _rx + " addr add 10.77.1.2/16 brd + dev shoal1") &&
              run("ip -n " + _tx + " link set lo up") && run("ip -n " + _rx + " link set lo up") &&
              run("ip -n " + _tx + " link set shoal0 up") &&
              run("ip -n " + _rx + " link set shoal1 up");
    }
    ~veth_pair() {
        remove();
        g_netns_path_count = 0;
        std::signal(SIGTERM, SIG_DFL);
        std::signal(SIGINT, SIG_DFL);
    }
    veth_pair(const veth_pair&) = delete;
    veth_pair& operator=(const veth_pair&) = delete;

    bool ok() const { return _ok; }
    const std::string& tx() const { return _tx; }
    const std::string& rx() const { return _rx; }

private:
    void remove() {
        run("ip netns del " + _tx);
        run("ip netns del " + _rx);
    }
    std::string _tx;
    std::string _rx;
    bool _ok = false;
};

// Creates a udp_uring inside a namespace; the calling thread returns to its own after.
result<std::unique_ptr<udp_uring>> create_in(const std::string& netns, const udp_config& c) {
    const int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int there = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (home < 0 || there < 0 || setns(there, CLONE_NEWNET) != 0) {
        const int saved = errno;
        if (home >= 0) {
            close(home);
        }
        if (there >= 0) {
            close(there);
        }
        return error::format(errc::io, saved, "enter netns {}", netns);
    }
    auto io = udp_uring::create(c);
    const bool back = setns(home, CLONE_NEWNET) == 0;
    close(home);
    close(there);
    // Staying in the wrong namespace would spoil every test after this one.
    SHOAL_ASSERT(back);
    return io;
}

std::string skip_reason() {
    if (geteuid() != 0) {
        return "needs root to make network namespaces";
    }
    if (!run("ip netns list")) {
        return "`ip netns` is not available";
    }
    return {};
}

std::string group_for_this_process() {
    const unsigned pid = static_cast<unsigned>(getpid());
    return "239.78." + std::to_string((pid >> 8) & 0xff) + "." + std::to_string(pid & 0xff);
}

struct endpoints {
    std::unique_ptr<udp_uring> sender;
    std::unique_ptr<udp_uring> receivers[2];
};

// Sends `total` numbered packets of the given sizes (cycled) in bursts, draining both
// receivers between bursts so the veth backlog and the buffer rings never overflow, then
// checks that every receiver got every byte.
void send_and_check(endpoints& e, const std::vector<std::uint32_t>& cycle, std::size_t total,
                    const time::deadline& give_up) {
    constexpr std::size_t burst_count = 64;
    std::vector<bool> seen[2] = {std::vector<bool>(total), std::vector<bool>(total)};
    std::size_t received[2] = {0, 0};
    std::size_t bad[2] = {0, 0};
    std::vector<std::uint32_t> sizes;
    packet rx[64];

    auto drain = [&](std::int64_t timeout_ns) {
        for (int r = 0; r < 2; ++r) {
            for (;;) {
                auto got = e.receivers[r]->recv_burst(rx, 64, timeout_ns);
                ASSERT_TRUE(got) << got.err().describe();
                for (std::size_t i = 0; i < *got; ++i) {
                    const std::int64_t seq = test::check_packet(rx[i]);
                    if (seq < 0 || static_cast<std::size_t>(seq) >= total ||
                        seen[r][static_cast<std::size_t>(seq)]) {
                        ++bad[r];
                    } else {
                        seen[r][static_cast<std::size_t>(seq)] = true;
                        ++received[r];
                    }
                }
                e.receivers[r]->release_burst(rx, *got);
                if (*got == 0) {
                    break;
                }
            }
        }
    };

    std::size_t sent = 0;
    while (sent < total && !give_up.expired()) {
        sizes.clear();
        for (std::size_t i = 0; i < burst_count && sent + i < total; ++i) {
            sizes.push_back(cycle[(sent + i) % cycle.size()]);
        }
        std::string failure;
        const std::size_t n = send_numbered(*e.sender, sizes, static_cast<std::uint32_t>(sent),
                                            time::ns_per_s, &failure);
        ASSERT_EQ(n, sizes.size()) << failure;
        sent += n;
        drain(0);
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
    }
    ASSERT_EQ(sent, total) << "ran out of time sending";
    while ((received[0] < total || received[1] < total) && !give_up.expired()) {
        drain(20 * time::ns_per_ms);
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
    }
    for (int r = 0; r < 2; ++r) {
        EXPECT_EQ(received[r], total) << "receiver " << r;
        EXPECT_EQ(bad[r], 0u) << "receiver " << r;
        EXPECT_EQ(e.receivers[r]->stats().recv_truncated, 0u);
    }
    EXPECT_EQ(e.sender->stats().packets_sent, total);
}

result<endpoints> make_endpoints(const veth_pair& net, udp_config c) {
    endpoints e;
    c.interface_name = "shoal0";
    c.loopback = false;
    auto sender = create_in(net.tx(), c);
    if (!sender) {
        return sender.err();
    }
    e.sender = std::move(*sender);
    c.interface_name = "shoal1";
    for (auto& receiver : e.receivers) {
        auto r = create_in(net.rx(), c);
        if (!r) {
            return r.err();
        }
        receiver = std::move(*r);
    }
    return e;
}

TEST(netns, two_receivers_get_every_byte_of_20000_packets) {
    if (const std::string why = skip_reason(); !why.empty()) {
        GTEST_SKIP() << why;
    }
    const time::deadline give_up = time::deadline::after_ns(test_budget_ns);
    veth_pair net;
    ASSERT_TRUE(net.ok()) << "could not set up namespaces " << net.tx() << " and " << net.rx();

    udp_config c;
    c.group = test::ipv4(group_for_this_process().c_str());
    c.port = 47000;  // the namespaces are ours alone: any port will do
    c.recv_buffer_count = 4096;
    c.send_buffer_count = 1024;
    auto e = make_endpoints(net, c);
    ASSERT_TRUE(e) << e.err().describe();

    // GSO runs of full-size packets with a short tail, and odd single sizes.
    std::vector<std::uint32_t> cycle(40, 1472);
    cycle.push_back(1000);
    cycle.insert(cycle.end(), {8, 333, 1472, 64});
    cycle.insert(cycle.end(), 18, 1200);
    send_and_check(*e, cycle, 20000, give_up);
    EXPECT_TRUE(e->sender->gso_active());
    EXPECT_LT(e->sender->stats().send_calls, 20000u / 4);
}

// Segments larger than the link's MTU: the kernel refuses UDP GSO (EINVAL), udp_uring turns
// it off and resends each packet on its own, which IP fragments and the receivers reassemble.
TEST(netns, gso_refused_by_the_path_falls_back_without_loss) {
    if (const std::string why = skip_reason(); !why.empty()) {
        GTEST_SKIP() << why;
    }
    const time::deadline give_up = time::deadline::after_ns(test_budget_ns);
    veth_pair net;
    ASSERT_TRUE(net.ok()) << "could not set up namespaces " << net.tx() << " and " << net.rx();

    udp_config c;
    c.group = test::ipv4(group_for_this_process().c_str());
    c.port = 47001;
    c.payload_size_max = 3000;
    c.recv_buffer_count = 1024;
    c.send_buffer_count = 256;
    auto e = make_endpoints(net, c);
    ASSERT_TRUE(e) << e.err().describe();
    ASSERT_TRUE(e->sender->gso_active());

    const std::vector<std::uint32_t> cycle(32, 2000);
    send_and_check(*e, cycle, 2000, give_up);
    EXPECT_FALSE(e->sender->gso_active());
}

// A slow link (tbf, 20 Mbit/s) behind a small socket send buffer: sendmsgs wait in the
// kernel, the 256 send slots fill, and send_burst must then accept fewer and return at once
// rather than block, with every accepted packet still delivered intact.
TEST(netns, a_full_send_queue_accepts_fewer_and_never_blocks) {
    if (const std::string why = skip_reason(); !why.empty()) {
        GTEST_SKIP() << why;
    }
    if (!run("tc -V")) {
        GTEST_SKIP() << "tc (iproute2) is not available";
    }
    const time::deadline give_up = time::deadline::after_ns(test_budget_ns);
    veth_pair net;
    ASSERT_TRUE(net.ok()) << "could not set up namespaces " << net.tx() << " and " << net.rx();
    ASSERT_TRUE(run("ip netns exec " + net.tx() +
                    " tc qdisc add dev shoal0 root tbf rate 20mbit burst 16kb limit 8mb"));

    udp_config c;
    c.group = test::ipv4(group_for_this_process().c_str());
    c.port = 47002;
    c.use_gso = false;
    c.send_buffer_count = 1024;  // more buffers than send slots: the slots run out first
    c.socket_buffer_bytes = 32 << 10;
    c.recv_buffer_count = 2048;
    auto e = make_endpoints(net, c);
    ASSERT_TRUE(e) << e.err().describe();

    constexpr std::size_t total = 1500;  // 2.2 MB: about 0.9 s at 20 Mbit/s
    std::vector<bool> seen[2] = {std::vector<bool>(total), std::vector<bool>(total)};
    std::size_t received[2] = {0, 0};
    std::size_t bad = 0;
    std::size_t sent = 0;
    std::size_t partial_count = 0;
    std::int64_t call_ns_max = 0;
    packet tx[64];
    packet rx[64];
    auto drain = [&](std::int64_t timeout_ns) {
        for (int r = 0; r < 2; ++r) {
            auto got = e->receivers[r]->recv_burst(rx, 64, timeout_ns);
            ASSERT_TRUE(got) << got.err().describe();
            for (std::size_t i = 0; i < *got; ++i) {
                const std::int64_t seq = test::check_packet(rx[i]);
                if (seq < 0 || static_cast<std::size_t>(seq) >= total ||
                    seen[r][static_cast<std::size_t>(seq)]) {
                    ++bad;
                } else {
                    seen[r][static_cast<std::size_t>(seq)] = true;
                    ++received[r];
                }
            }
            e->receivers[r]->release_burst(rx, *got);
        }
    };
    while (sent < total && !give_up.expired()) {
        const std::size_t got = e->sender->alloc_burst(tx, std::min<std::size_t>(64, total - sent));
        for (std::size_t i = 0; i < got; ++i) {
            test::fill_packet(tx[i], static_cast<std::uint32_t>(sent + i), 1472);
        }
        const std::int64_t start_ns = time::monotonic_ns();
        auto r = e->sender->send_burst(tx, got);
        call_ns_max = std::max(call_ns_max, time::monotonic_ns() - start_ns);
        ASSERT_TRUE(r) << r.err().describe();
        if (*r < got) {
            ++partial_count;
            // Not accepted: still ours. Give them back; they are numbered again next time.
            e->sender->release_burst(tx + *r, got - *r);
        }
        sent += *r;
        drain(0);
        ASSERT_FALSE(::testing::Test::HasFatalFailure());
    }
    ASSERT_EQ(sent, total);
    while ((received[0] < total || received[1] < total) && !give_up.expired()) {
        drain(20 * time::ns_per_ms);
        ASSERT_FALSE(::testing::Test::HasFatalFailure());
    }
    RecordProperty("partial_accepts", static_cast<int>(partial_count));
    RecordProperty("send_burst_us_max", static_cast<int>(call_ns_max / time::ns_per_us));
    EXPECT_GT(partial_count, 0u) << "the send queue never filled: the test proved nothing";
    // A send that blocked on the full queue would wait for the receivers, which drain only
    // between our calls: it would hang. A second tells that from a slow, loaded machine.
    EXPECT_LT(call_ns_max, 1000 * time::ns_per_ms) << "send_burst blocked";
    EXPECT_EQ(received[0], total);
    EXPECT_EQ(received[1], total);
    EXPECT_EQ(bad, 0u);

    // Fill the queue once more and destroy the sender with sendmsgs stuck in the kernel:
    // it cancels them and returns promptly.
    for (int i = 0; i < 100; ++i) {
        const std::size_t got = e->sender->alloc_burst(tx, 64);
        for (std::size_t k = 0; k < got; ++k) {
            tx[k].size = 1472;
        }
        auto r = e->sender->send_burst(tx, got);
        ASSERT_TRUE(r) << r.err().describe();
        e->sender->release_burst(tx + *r, got - *r);
        if (*r < got) {
            break;
        }
    }
    const std::int64_t start_ns = time::monotonic_ns();
    e->sender.reset();
    RecordProperty("sender_shutdown_us",
                   static_cast<int>((time::monotonic_ns() - start_ns) / time::ns_per_us));
    // Under the destructor's 200 ms bound: the cancel, not the timeout, ended the wait.
    EXPECT_LT(time::monotonic_ns() - start_ns, 150 * time::ns_per_ms);
}

}  // namespace
}  // namespace shoal::io
