// Wake-on-LAN: the packet's bytes (unit), and the packet as a receiver on a real interface
// sees it when sent to a configured broadcast address and to a subnet's broadcast
// (in a network namespace of its own: skipped without root).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tasks/wol.h"

namespace shoal::control::tasks {
namespace {

ipxe::mac_address test_mac() {
    auto m = ipxe::parse_mac("00:12:3F:C4:57:0C");
    EXPECT_TRUE(m);
    return *m;
}

TEST(wol, magic_packet_bytes) {
    auto p = magic_packet(test_mac());
    ASSERT_EQ(p.size(), 102U);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(p[static_cast<std::size_t>(i)], 0xff);
    }
    const std::uint8_t mac[6] = {0x00, 0x12, 0x3f, 0xc4, 0x57, 0x0c};
    for (int rep = 0; rep < 16; ++rep) {
        EXPECT_EQ(std::memcmp(p.data() + 6 + rep * 6, mac, 6), 0) << rep;
    }
}

TEST(wol, addresses) {
    auto b = subnet_broadcast("10.77.1.5", 16);
    ASSERT_TRUE(b);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &*b, text, sizeof text);
    EXPECT_STREQ(text, "10.77.255.255");
    auto c = subnet_broadcast("192.168.4.9", 24);
    ASSERT_TRUE(c);
    inet_ntop(AF_INET, &*c, text, sizeof text);
    EXPECT_STREQ(text, "192.168.4.255");
    EXPECT_FALSE(subnet_broadcast("10.77.1.5", 33));
    auto single = subnet_broadcast("10.77.1.5", 32);
    ASSERT_TRUE(single);
    inet_ntop(AF_INET, &*single, text, sizeof text);
    EXPECT_STREQ(text, "10.77.1.5");
    auto all = subnet_broadcast("10.77.1.5", 0);
    ASSERT_TRUE(all);
    inet_ntop(AF_INET, &*all, text, sizeof text);
    EXPECT_STREQ(text, "255.255.255.255");
    auto bad = parse_broadcast("10.77.255");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.err().describe().find("\"10.77.255\" is not an IPv4"), std::string::npos);
    EXPECT_FALSE(wake(test_mac(), {}));
}

bool run(const char* command) { return std::system(command) == 0; }

TEST(wol_netns, receiver_gets_the_magic_packet_on_both_broadcasts) {
    if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0) {
        GTEST_SKIP() << "needs root for a network namespace";
    }
    // A veth pair: this process's namespace sends, a namespace of its own receives, with an
    // address in a subnet named in the config and one in the host's last known subnet.
    std::string ns = "shoal-wolrx" + std::to_string(getpid());
    std::string setup = "ip link set lo up && ip netns add " + ns +
                        " && ip link add wol0 type veth peer name eth0 netns " + ns +
                        " && ip addr add 10.91.0.1/24 brd + dev wol0"
                        " && ip addr add 10.92.3.1/16 brd + dev wol0 && ip link set wol0 up"
                        " && ip -n " +
                        ns +
                        " addr add 10.91.0.2/24 brd + dev eth0"
                        " && ip -n " +
                        ns +
                        " addr add 10.92.3.77/16 brd + dev eth0"
                        " && ip -n " +
                        ns + " link set eth0 up";
    bool made = run(setup.c_str());
    struct cleanup {
        std::string command;
        ~cleanup() { (void)std::system(command.c_str()); }
    } remove_ns{"ip netns del " + ns + " 2>/dev/null"};
    ASSERT_TRUE(made) << setup;
    // The receiving socket is made inside the other namespace and keeps it.
    int rx = -1;
    std::thread([&] {
        int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && setns(fd, CLONE_NEWNET) == 0) {
            rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        }
        if (fd >= 0) {
            close(fd);
        }
    }).join();
    ASSERT_GE(rx, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(wol_port_default);
    ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&any), sizeof any), 0) << strerror(errno);

    // Both ends carrier-up first: a frame sent while a veth comes up is lost.
    std::string up = "for i in $(seq 1 50); do ip link show wol0 | grep -q 'state UP' && ip -n " +
                     ns + " link show eth0 | grep -q 'state UP' && exit 0; sleep 0.1; done; exit 1";
    ASSERT_TRUE(run(up.c_str()));

    auto configured = parse_broadcast("10.91.0.255");
    auto last_known = subnet_broadcast("10.92.3.77", 16);
    ASSERT_TRUE(configured && last_known);
    std::vector<in_addr> to{*configured, *last_known, *configured};  // a duplicate: sent once
    auto report = wake(test_mac(), to, wol_port_default, 2);
    ASSERT_TRUE(report) << report.err().describe();
    EXPECT_EQ(report->addresses_sent, 2U);
    EXPECT_EQ(report->addresses_failed, 0U);

    auto expected = magic_packet(test_mac());
    int count = 0;
    std::vector<std::uint32_t> destinations;
    for (;;) {
        pollfd p{rx, POLLIN, 0};
        if (poll(&p, 1, 500) <= 0) {
            break;
        }
        std::uint8_t buf[256];
        ssize_t n = recv(rx, buf, sizeof buf, 0);
        ASSERT_EQ(n, 102);
        EXPECT_EQ(std::memcmp(buf, expected.data(), expected.size()), 0);
        ++count;
    }
    // 2 destinations x 2 repeats, each across the link.
    EXPECT_EQ(count, 4);

    // Without a route the send fails and is counted, not fatal.
    auto nowhere = parse_broadcast("10.200.0.255");
    ASSERT_TRUE(nowhere);
    std::vector<in_addr> unreachable{*nowhere, *configured};
    auto partial = wake(test_mac(), unreachable, wol_port_default, 1);
    ASSERT_TRUE(partial);
    EXPECT_EQ(partial->addresses_sent, 1U);
    EXPECT_EQ(partial->addresses_failed, 1U);
    close(rx);
}

}  // namespace
}  // namespace shoal::control::tasks
