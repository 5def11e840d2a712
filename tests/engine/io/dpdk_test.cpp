// The DPDK groundwork on a virtual device: net_ring0 is a ring-backed port whose transmit
// queue feeds its own receive queue, so a burst sent comes straight back. No NIC, no
// hugepages. Skips when the EAL cannot start here (privileges, memory), fails on a bad
// argument of ours.
#include "io/dpdk/eal.h"

#include <gtest/gtest.h>

#include <rte_mbuf.h>

#include <unistd.h>

#include <string>
#include <vector>

namespace shoal::io::dpdk {
namespace {

// The EAL starts once per process: every test shares it.
class eal_environment : public ::testing::Environment {
public:
    void SetUp() override {
        const std::string prefix = "--file-prefix=shoal-test-" + std::to_string(getpid());
        const std::vector<std::string> args = {
            // --no-shconf, not --in-memory: the latter refuses --no-huge's legacy memory mode.
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "-l",
            "0",
            "--vdev=net_ring0",
            "--log-level=error",
            prefix};
        auto s = eal_start(args);
        if (s) {
            started = true;
        } else {
            why = s.err().describe();
            bad_argument = s.err().sys_errno() == EINVAL;
        }
    }
    void TearDown() override {
        if (started) {
            EXPECT_TRUE(eal_stop());
        }
    }
    static inline bool started = false;
    static inline bool bad_argument = false;
    static inline std::string why;
};

#define REQUIRE_EAL()                                                              \
    do {                                                                           \
        ASSERT_FALSE(eal_environment::bad_argument) << eal_environment::why;       \
        if (!eal_environment::started) {                                           \
            GTEST_SKIP() << "the EAL cannot start here: " << eal_environment::why; \
        }                                                                          \
    } while (0)

std::uint8_t pattern(std::size_t packet_index, std::size_t offset) {
    return static_cast<std::uint8_t>(packet_index * 29 + offset * 3 + 1);
}

TEST(dpdk, a_second_eal_start_is_refused_as_a_value) {
    REQUIRE_EAL();
    const std::vector<std::string> args = {"--no-huge"};
    auto s = eal_start(args);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().code(), errc::exists);
    EXPECT_NE(s.err().describe().find("once per process"), std::string::npos);
}

TEST(dpdk, unknown_port_name_is_not_found) {
    REQUIRE_EAL();
    auto r = port_by_name("net_nope9");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code(), errc::not_found);
    EXPECT_NE(r.err().describe().find("net_nope9"), std::string::npos);
}

TEST(dpdk, ring_port_loops_a_burst_back_byte_for_byte) {
    REQUIRE_EAL();
    auto id = port_by_name("net_ring0");
    ASSERT_TRUE(id) << id.err().describe();
    port_config c;
    c.port_id = *id;
    c.mbuf_count = 2047;
    c.rx_descriptor_count = 512;
    c.tx_descriptor_count = 512;
    auto p = port::start(c);
    ASSERT_TRUE(p) << p.err().describe();

    constexpr std::size_t burst = 32;
    for (int round = 0; round < 100; ++round) {  // many rounds: mbufs go back to the pool
        rte_mbuf* tx[burst];
        ASSERT_EQ((*p)->alloc_burst(tx, burst), burst);
        for (std::size_t i = 0; i < burst; ++i) {
            const std::size_t size = 60 + (i * 47 + static_cast<std::size_t>(round)) % 1400;
            auto* bytes = reinterpret_cast<std::uint8_t*>(
                rte_pktmbuf_append(tx[i], static_cast<std::uint16_t>(size)));
            ASSERT_NE(bytes, nullptr);
            for (std::size_t k = 0; k < size; ++k) {
                bytes[k] = pattern(i + static_cast<std::size_t>(round), k);
            }
        }
        ASSERT_EQ((*p)->tx_burst(tx, burst), burst);

        rte_mbuf* rx[burst];
        std::size_t got = 0;
        for (int tries = 0; got < burst && tries < 1000; ++tries) {
            got += (*p)->rx_burst(rx + got, burst - got);
        }
        ASSERT_EQ(got, burst);
        for (std::size_t i = 0; i < burst; ++i) {
            const std::size_t size = 60 + (i * 47 + static_cast<std::size_t>(round)) % 1400;
            ASSERT_EQ(rte_pktmbuf_pkt_len(rx[i]), size);
            const auto* bytes = rte_pktmbuf_mtod(rx[i], const std::uint8_t*);
            for (std::size_t k = 0; k < size; ++k) {
                ASSERT_EQ(bytes[k], pattern(i + static_cast<std::size_t>(round), k))
                    << "round " << round << " packet " << i << " byte " << k;
            }
            rte_pktmbuf_free(rx[i]);
        }
    }
}

TEST(dpdk, a_pool_name_in_use_is_an_error_value) {
    REQUIRE_EAL();
    auto a = mbuf_pool_create("shoal_dup", 511, 0, 2048);
    ASSERT_TRUE(a) << a.err().describe();
    auto b = mbuf_pool_create("shoal_dup", 511, 0, 2048);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.err().code(), errc::exists);
    rte_mempool_free(*a);
}

}  // namespace
}  // namespace shoal::io::dpdk

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new shoal::io::dpdk::eal_environment);
    return RUN_ALL_TESTS();
}
