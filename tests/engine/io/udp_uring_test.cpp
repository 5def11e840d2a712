// udp_uring over loopback: one instance bound to 0.0.0.0:port sends to 127.0.0.1:port and so
// hears itself, which exercises both directions without a second host.
#include "io/udp_uring.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "alloc_counter.h"
#include "common/clock.h"
#include "io_test_support.h"

namespace shoal::io {
namespace {

using test::check_packet;
using test::fill_packet;
using test::receive_numbered;
using test::send_numbered;

constexpr std::int64_t exchange_timeout_ns = 2 * time::ns_per_s;

udp_config loopback_config(std::uint16_t port) {
    udp_config c;
    c.group = test::ipv4("127.0.0.1");
    c.port = port;
    c.recv_buffer_count = 512;
    c.send_buffer_count = 512;
    c.socket_buffer_bytes = 8u << 20;
    return c;
}

std::unique_ptr<udp_uring> make(const udp_config& c) {
    auto r = udp_uring::create(c);
    if (!r) {
        ADD_FAILURE() << "create: " << r.err().describe();
        return nullptr;
    }
    return std::move(*r);
}

// One round's sizes: GSO batches with and without a short last segment, a run longer than
// 64 segments, a run whose bytes exceed 65000, and single packets of odd sizes.
std::vector<std::uint32_t> round_sizes() {
    std::vector<std::uint32_t> s;
    s.insert(s.end(), 20, 1472);
    s.push_back(1000);            // short last segment
    s.insert(s.end(), 70, 1400);  // > 64 segments: split
    s.insert(s.end(), 60, 1200);  // 72000 bytes > 65000: split
    s.insert(s.end(), 5, 700);
    s.push_back(300);
    for (std::uint32_t size : {8u, 9u, 100u, 1472u, 64u, 1471u}) {
        s.push_back(size);  // nothing to batch with
    }
    s.push_back(900);
    s.push_back(1000);  // longer after shorter: a new batch
    return s;
}

void exchange_rounds(udp_uring& io, int round_count) {
    const std::vector<std::uint32_t> sizes = round_sizes();
    std::uint32_t seq = 0;
    for (int round = 0; round < round_count; ++round) {
        std::string failure;
        const std::size_t sent = send_numbered(io, sizes, seq, exchange_timeout_ns, &failure);
        ASSERT_EQ(sent, sizes.size()) << "round " << round << ": " << failure;
        const auto tally = receive_numbered(io, sizes.size(), seq, exchange_timeout_ns);
        ASSERT_EQ(tally.received, sizes.size()) << "round " << round << ": " << tally.failure;
        ASSERT_EQ(tally.bad, 0u);
        ASSERT_EQ(tally.duplicate, 0u);
        ASSERT_EQ(tally.foreign, 0u);
        seq += static_cast<std::uint32_t>(sizes.size());
    }
}

TEST(udp_uring, gso_batches_deliver_every_byte_and_buffers_come_back) {
    const udp_config c = loopback_config(test::free_udp_port());
    auto io = make(c);
    ASSERT_TRUE(io);
    // 20 rounds of 166 packets: over 6 times the 512 receive buffers.
    exchange_rounds(*io, 20);
    const udp_stats& st = io->stats();
    EXPECT_EQ(st.packets_sent, 20u * round_sizes().size());
    EXPECT_EQ(st.packets_received, st.packets_sent);
    EXPECT_EQ(st.recv_truncated, 0u);
    ASSERT_TRUE(io->gso_active()) << "the kernel refused UDP GSO on loopback";
    // Batching happened: far fewer sendmsg calls than packets.
    EXPECT_LT(st.send_calls * 3, st.packets_sent);
}

TEST(udp_uring, without_gso_every_packet_is_its_own_sendmsg) {
    udp_config c = loopback_config(test::free_udp_port());
    c.use_gso = false;
    auto io = make(c);
    ASSERT_TRUE(io);
    EXPECT_FALSE(io->gso_active());
    exchange_rounds(*io, 5);
    const udp_stats& st = io->stats();
    EXPECT_EQ(st.packets_received, st.packets_sent);
    EXPECT_EQ(st.send_calls, st.packets_sent);
}

TEST(udp_uring, random_sizes_in_many_rounds) {
    udp_config c = loopback_config(test::free_udp_port());
    c.recv_buffer_count = 128;
    auto io = make(c);
    ASSERT_TRUE(io);
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::uint32_t> size(test::packet_header_size, 1472);
    std::uniform_int_distribution<int> run(1, 80);
    std::uint32_t seq = 0;
    for (int round = 0; round < 30; ++round) {
        // Runs of equal sizes, so some batch and some do not.
        std::vector<std::uint32_t> sizes;
        while (sizes.size() < 100) {
            sizes.insert(sizes.end(), static_cast<std::size_t>(run(rng)), size(rng));
        }
        sizes.resize(100);
        std::string failure;
        ASSERT_EQ(send_numbered(*io, sizes, seq, exchange_timeout_ns, &failure), sizes.size())
            << failure;
        const auto tally = receive_numbered(*io, sizes.size(), seq, exchange_timeout_ns);
        ASSERT_EQ(tally.received, sizes.size()) << "round " << round << ": " << tally.failure;
        ASSERT_EQ(tally.bad + tally.duplicate + tally.foreign, 0u);
        seq += 100;
    }
}

TEST(udp_uring, peer_is_the_sender) {
    const udp_config c = loopback_config(test::free_udp_port());
    auto io = make(c);
    ASSERT_TRUE(io);
    ASSERT_EQ(send_numbered(*io, {64}, 0, exchange_timeout_ns, nullptr), 1u);
    packet p;
    auto r = io->recv_burst(&p, 1, exchange_timeout_ns);
    ASSERT_TRUE(r) << r.err().describe();
    ASSERT_EQ(*r, 1u);
    EXPECT_EQ(p.peer.sin_family, AF_INET);
    EXPECT_EQ(p.peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    EXPECT_EQ(ntohs(p.peer.sin_port), c.port);
    EXPECT_EQ(check_packet(p), 0);
    io->release_burst(&p, 1);
}

TEST(udp_uring, recv_timeout_returns_zero_within_bounds) {
    auto io = make(loopback_config(test::free_udp_port()));
    ASSERT_TRUE(io);
    packet p[4];
    std::int64_t start_ns = time::monotonic_ns();
    auto r = io->recv_burst(p, 4, 0);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 0u);
    EXPECT_LT(time::monotonic_ns() - start_ns, 50 * time::ns_per_ms);

    start_ns = time::monotonic_ns();
    r = io->recv_burst(p, 4, 100 * time::ns_per_ms);
    const std::int64_t waited_ns = time::monotonic_ns() - start_ns;
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 0u);
    EXPECT_GE(waited_ns, 90 * time::ns_per_ms);
    EXPECT_LT(waited_ns, 1 * time::ns_per_s);
}

TEST(udp_uring, holding_every_buffer_counts_no_buffer_and_loses_nothing) {
    udp_config c = loopback_config(test::free_udp_port());
    c.recv_buffer_count = 64;
    auto io = make(c);
    ASSERT_TRUE(io);
    // 100 small packets: the socket keeps what the 64 buffers cannot take.
    const std::vector<std::uint32_t> sizes(100, 200);
    ASSERT_EQ(send_numbered(*io, sizes, 0, exchange_timeout_ns, nullptr), sizes.size());

    std::vector<packet> held(64);
    std::size_t held_count = 0;
    const time::deadline give_up = time::deadline::after_ns(exchange_timeout_ns);
    while (held_count < held.size() && !give_up.expired()) {
        auto r = io->recv_burst(held.data() + held_count, held.size() - held_count,
                                10 * time::ns_per_ms);
        ASSERT_TRUE(r) << r.err().describe();
        held_count += *r;
    }
    ASSERT_EQ(held_count, held.size());
    // Nothing can arrive while we hold them all, and recv_burst says so at once.
    packet extra;
    const std::int64_t start_ns = time::monotonic_ns();
    auto r = io->recv_burst(&extra, 1, 500 * time::ns_per_ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 0u);
    EXPECT_LT(time::monotonic_ns() - start_ns, 400 * time::ns_per_ms);
    EXPECT_GE(io->stats().recv_no_buffer, 1u);

    std::vector<bool> seen(sizes.size(), false);
    for (const packet& p : held) {
        const std::int64_t seq = check_packet(p);
        ASSERT_GE(seq, 0);
        seen[static_cast<std::size_t>(seq)] = true;
    }
    io->release_burst(held.data(), held.size());
    // The other 36 were waiting in the socket: re-arming picks them up.
    packet rest[64];
    std::size_t rest_count = 0;
    while (rest_count < 36 && !give_up.expired()) {
        auto got = io->recv_burst(rest, 64, 10 * time::ns_per_ms);
        ASSERT_TRUE(got) << got.err().describe();
        for (std::size_t i = 0; i < *got; ++i) {
            const std::int64_t seq = check_packet(rest[i]);
            ASSERT_GE(seq, 0);
            EXPECT_FALSE(seen[static_cast<std::size_t>(seq)]);
            seen[static_cast<std::size_t>(seq)] = true;
        }
        rest_count += *got;
        io->release_burst(rest, *got);
    }
    EXPECT_EQ(rest_count, 36u);
}

TEST(udp_uring, truncated_datagrams_are_dropped_and_counted) {
    udp_config c = loopback_config(test::free_udp_port());
    c.payload_size_max = 256;
    c.recv_buffer_count = 1;  // the smallest ring: every datagram needs a re-arm
    auto io = make(c);
    ASSERT_TRUE(io);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(c.port);
    to.sin_addr = test::ipv4("127.0.0.1");
    std::vector<std::byte> big(1000, std::byte{0x5a});
    // More oversized datagrams than buffers: each one's buffer must come back.
    for (int i = 0; i < 20; ++i) {
        ASSERT_EQ(
            sendto(fd, big.data(), big.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(big.size()));
    }
    std::vector<std::byte> small(100, std::byte{0xa5});
    ASSERT_EQ(
        sendto(fd, small.data(), small.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
        static_cast<ssize_t>(small.size()));
    close(fd);

    packet p;
    auto r = io->recv_burst(&p, 1, exchange_timeout_ns);
    ASSERT_TRUE(r) << r.err().describe();
    ASSERT_EQ(*r, 1u) << "truncated " << io->stats().recv_truncated << " no buffer "
                      << io->stats().recv_no_buffer;
    EXPECT_EQ(p.size, 100u);
    EXPECT_EQ(std::memcmp(p.data, small.data(), small.size()), 0);
    io->release_burst(&p, 1);
    EXPECT_EQ(io->stats().recv_truncated, 20u);
}

TEST(udp_uring, unsent_send_buffers_go_back_to_the_pool) {
    udp_config c = loopback_config(test::free_udp_port());
    c.send_buffer_count = 16;
    auto io = make(c);
    ASSERT_TRUE(io);
    packet p[20];
    ASSERT_EQ(io->alloc_burst(p, 20), 16u);
    EXPECT_EQ(io->alloc_burst(p + 16, 4), 0u);
    io->release_burst(p, 16);
    ASSERT_EQ(io->alloc_burst(p, 20), 16u);
    for (int i = 0; i < 16; ++i) {
        EXPECT_NE(p[i].data, nullptr);
    }
    io->release_burst(p, 16);
}

TEST(udp_uring, a_missing_interface_is_a_clear_error) {
    udp_config c = loopback_config(test::free_udp_port());
    c.group = test::ipv4("239.77.0.1");
    c.interface_name = "shoal-nope0";
    auto r = udp_uring::create(c);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::not_found);
    const std::string text = r.err().describe();
    EXPECT_NE(text.find("shoal-nope0"), std::string::npos) << text;
    EXPECT_NE(text.find("239.77.0.1"), std::string::npos) << text;
}

TEST(udp_uring, bad_configs_are_rejected) {
    udp_config c = loopback_config(test::free_udp_port());
    c.recv_buffer_count = 100;  // not a power of two
    auto r = udp_uring::create(c);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);

    c = loopback_config(0);
    r = udp_uring::create(c);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);

    c = loopback_config(test::free_udp_port());
    c.payload_size_max = 70000;
    r = udp_uring::create(c);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::invalid_argument);
}

TEST(udp_uring, two_receivers_share_a_port) {
    // SO_REUSEADDR: a second socket on the same port is not an error.
    const udp_config c = loopback_config(test::free_udp_port());
    auto a = make(c);
    auto b = make(c);
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
}

// alloc_burst, send_burst, recv_burst and release_burst after warm-up: no operator new.
TEST(udp_uring, hot_path_does_not_allocate) {
    const udp_config c = loopback_config(test::free_udp_port());
    auto io = make(c);
    ASSERT_TRUE(io);
    constexpr std::size_t burst = 64;
    packet tx[burst];
    packet rx[burst];
    std::size_t sent_total = 0;
    std::size_t received_total = 0;
    std::size_t bad = 0;
    std::size_t allocations = 0;
    for (int round = 0; round < 50; ++round) {
        const std::size_t before = shoal::test::allocation_count();
        const std::size_t got = io->alloc_burst(tx, burst);
        for (std::size_t i = 0; i < got; ++i) {
            // Mixed sizes: equal runs (GSO) and a short tail.
            fill_packet(tx[i], static_cast<std::uint32_t>(sent_total + i), i < 60 ? 1472 : 500);
        }
        std::size_t done = 0;
        for (int tries = 0; done < got && tries < 100; ++tries) {
            auto r = io->send_burst(tx + done, got - done);
            if (!r) {
                break;
            }
            done += *r;
        }
        io->release_burst(tx + done, got - done);
        sent_total += done;
        const time::deadline give_up = time::deadline::after_ns(exchange_timeout_ns);
        while (received_total < sent_total && !give_up.expired()) {
            auto r = io->recv_burst(rx, burst, 10 * time::ns_per_ms);
            if (!r) {
                break;
            }
            for (std::size_t i = 0; i < *r; ++i) {
                bad += check_packet(rx[i]) < 0 ? 1 : 0;
            }
            received_total += *r;
            io->release_burst(rx, *r);
        }
        // The first rounds may allocate inside the kernel's or libraries' lazy paths.
        if (round >= 5) {
            allocations += shoal::test::allocation_count() - before;
        }
    }
    EXPECT_EQ(allocations, 0u);
    EXPECT_EQ(sent_total, 50 * burst);
    EXPECT_EQ(received_total, sent_total);
    EXPECT_EQ(bad, 0u);
}

// A real multicast group on the loopback interface: a sender and a receiver on one host,
// both joined, IP_MULTICAST_LOOP on.
TEST(udp_uring, multicast_group_on_loopback) {
    const std::uint16_t port = test::free_udp_port();
    // A group of our own (from the PID) so parallel runs do not hear each other.
    const unsigned pid = static_cast<unsigned>(getpid());
    const std::string group_text =
        "239.77." + std::to_string((pid >> 8) & 0xff) + "." + std::to_string(pid & 0xff);
    udp_config c;
    c.group = test::ipv4(group_text.c_str());
    c.port = port;
    c.interface_name = "lo";
    c.loopback = true;
    c.recv_buffer_count = 512;
    c.send_buffer_count = 256;
    c.socket_buffer_bytes = 8u << 20;
    auto receiver = udp_uring::create(c);
    if (!receiver) {
        GTEST_SKIP() << "cannot join " << group_text << " on lo: " << receiver.err().describe();
    }
    auto sender = udp_uring::create(c);
    ASSERT_TRUE(sender) << sender.err().describe();

    // One probe first: lo without a multicast route may swallow it.
    std::string failure;
    ASSERT_EQ(send_numbered(**sender, {100}, 0, exchange_timeout_ns, &failure), 1u) << failure;
    auto probe = receive_numbered(**receiver, 1, 0, 500 * time::ns_per_ms);
    if (probe.received == 0) {
        GTEST_SKIP() << "multicast on lo is not delivered here (" << probe.failure
                     << "); needs a multicast-capable lo";
    }
    const std::vector<std::uint32_t> sizes = round_sizes();
    std::uint32_t seq = 1;
    for (int round = 0; round < 5; ++round) {
        ASSERT_EQ(send_numbered(**sender, sizes, seq, exchange_timeout_ns, &failure), sizes.size())
            << failure;
        const auto tally = receive_numbered(**receiver, sizes.size(), seq, exchange_timeout_ns);
        ASSERT_EQ(tally.received, sizes.size()) << tally.failure;
        ASSERT_EQ(tally.bad + tally.duplicate + tally.foreign, 0u);
        // The sender is in the group too and hears itself: it must also get them all.
        const auto own = receive_numbered(**sender, sizes.size() + (round == 0 ? 1 : 0),
                                          round == 0 ? 0 : seq, exchange_timeout_ns);
        ASSERT_EQ(own.received, sizes.size() + (round == 0 ? 1 : 0)) << own.failure;
        seq += static_cast<std::uint32_t>(sizes.size());
    }
}

}  // namespace
}  // namespace shoal::io
