#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>

#include "alloc_counter.h"
#include "common/log.h"
#include "session/writer.h"
#include "sim.h"
#include "wire/wire.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

namespace shoal {
namespace {

constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t s = 1'000 * ms;

// Half random (incompressible), half runs of repeated bytes (zstd shrinks them).
std::vector<std::byte> make_data(std::size_t size, std::uint64_t seed) {
    std::vector<std::byte> d(size);
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < size; i += 8) {
        const std::uint64_t v = (i / 65536) % 2 == 0 ? rng() : (i / 4096) * 0x0101010101010101ull;
        std::memcpy(d.data() + i, &v, std::min<std::size_t>(8, size - i));
    }
    return d;
}

session::sender_config base_config(std::uint64_t rate_bps = 400'000'000) {
    session::sender_config c;
    c.session_id = 0x5EED;
    const char key[] = "test session key";
    c.key.assign(reinterpret_cast<const std::byte*>(key),
                 reinterpret_cast<const std::byte*>(key) + sizeof key);
    c.rate_bps = rate_bps;
    c.wait_max_ns = 50 * ms;
    c.idle_timeout_ns = 500 * ms;
    return c;
}

struct fixture {
    std::vector<std::byte> data;
    session::prepared_session prepared;
    explicit fixture(std::size_t size = 2u << 20, std::size_t chunk = 256u << 10, std::uint64_t seed = 1)
        : data(make_data(size, seed)) {
        auto p = session::prepare_session(data, chunk, 3, 2);
        SHOAL_ASSERT(p.has_value());
        prepared = std::move(*p);
    }
};

class session_sim : public ::testing::Test {
protected:
    void SetUp() override { log::init(log::level::warn); }  // $SHOAL_LOG overrides
};

TEST_F(session_sim, one_receiver_no_loss_gets_every_byte_without_repairs) {
    fixture f;
    sim::network net(1, f.prepared, base_config(), {sim::link_profile{}});
    auto r = net.run(20 * s, f.data);
    EXPECT_TRUE(r.all_identical);
    EXPECT_EQ(net.sender().stats().repair_packets, 0u);
    EXPECT_TRUE(net.sender().finished());
    EXPECT_EQ(net.receiver(0).stats().blocks_decoded, 0u);
}

TEST_F(session_sim, eight_receivers_random_loss_reorder_duplication) {
    for (double loss : {0.01, 0.05, 0.20}) {
        fixture f;
        sim::link_profile l;
        l.loss = loss;
        l.jitter_ns = 300'000;  // ~60 packets of reordering at this rate
        l.duplicate = 0.01;
        sim::network net(static_cast<std::uint64_t>(loss * 1000), f.prepared, base_config(),
                         std::vector<sim::link_profile>(8, l));
        auto r = net.run(60 * s, f.data);
        EXPECT_TRUE(r.all_identical) << "loss " << loss;
        EXPECT_EQ(r.complete_count, 8u) << "loss " << loss;
        EXPECT_GT(net.sender().stats().repair_packets, 0u);
        EXPECT_GT(net.receiver(0).stats().blocks_decoded, 0u);  // FEC did the healing
        // The receivers' loss counts are what the network took, give or take duplicates,
        // the packets after their last full window and those after they finished.
        for (int i = 0; i < 8; ++i) {
            const double dropped = static_cast<double>(net.dropped_from_sender(i));
            const double counted = static_cast<double>(net.receiver(i).stats().lost_packets);
            EXPECT_GE(counted, 0.9 * dropped - 20) << "receiver " << i << " loss " << loss;
            EXPECT_LE(counted, 1.1 * dropped + 20) << "receiver " << i << " loss " << loss;
        }
    }
}

TEST_F(session_sim, burst_loss) {
    fixture f;
    sim::link_profile l;
    l.burst_enter = 0.01;   // bursts of ~3 packets, at half loss inside, ~2% overall
    l.burst_leave = 0.3;
    l.burst_loss = 0.9;
    sim::network net(7, f.prepared, base_config(), std::vector<sim::link_profile>(6, l));
    auto r = net.run(60 * s, f.data);
    EXPECT_TRUE(r.all_identical);
}

TEST_F(session_sim, feedback_per_receiver_stays_bounded_as_the_group_grows) {
    fixture f(512u << 10, 128u << 10);
    double per_receiver_rate[2];
    std::uint64_t sender_statuses[2];
    const std::size_t sizes[2] = {10, 500};
    for (int i = 0; i < 2; ++i) {
        sim::link_profile l;
        l.loss = 0.01;
        sim::network net(11, f.prepared, base_config(100'000'000),
                         std::vector<sim::link_profile>(sizes[i], l));
        auto r = net.run(60 * s, f.data);
        EXPECT_TRUE(r.all_identical) << sizes[i] << " receivers";
        std::uint64_t total = 0;
        for (auto n : r.statuses_per_receiver) {
            total += n;
        }
        sender_statuses[i] = total;
        per_receiver_rate[i] = static_cast<double>(total) / static_cast<double>(sizes[i]) /
                               (static_cast<double>(r.elapsed_ns) / s);
    }
    // Each receiver speaks less often in a larger group: the sender asks for at most
    // feedback_packets_per_s_max statuses a second from everyone together.
    EXPECT_LT(per_receiver_rate[1], per_receiver_rate[0]);
    const double group_rate_500 = per_receiver_rate[1] * 500;
    EXPECT_LT(group_rate_500, 2.0 * base_config().feedback_packets_per_s_max);
    EXPECT_GT(sender_statuses[1], 0u);
}

TEST_F(session_sim, late_joiner_is_served_in_the_catch_up_pass) {
    fixture f(4u << 20);
    sim::link_profile on_time;
    sim::link_profile late;
    late.join_ns = 100 * ms;  // the main pass runs from 50 ms to ~130 ms at this rate
    sim::network net(3, f.prepared, base_config(), {on_time, on_time, late});
    auto r = net.run(30 * s, f.data);
    EXPECT_TRUE(r.all_identical);
    const std::int64_t main_pass_end = net.sender().stats().main_pass_end_ns;
    ASSERT_GT(main_pass_end, late.join_ns);
    EXPECT_LE(r.complete_ns[0], main_pass_end + 20 * ms);
    EXPECT_GT(r.complete_ns[2], main_pass_end);  // what it missed came in the catch-up pass
}

TEST_F(session_sim, slow_receiver_does_not_set_the_pace) {
    fixture f(8u << 20);
    const std::uint64_t rate = 400'000'000;  // 50 MB/s
    auto cfg = base_config(rate);
    cfg.rate_floor_kBps = 20'000;  // 20 MB/s
    sim::link_profile healthy;
    sim::link_profile slow;
    slow.drain_Bps = 5e6;  // a disk at 5 MB/s, a tenth of the stream
    // Baseline: the healthy receivers alone.
    // 1 MiB of assembly buffers each: the slow one cannot hold the stream in memory.
    sim::network alone(5, f.prepared, cfg, std::vector<sim::link_profile>(3, healthy), 1u << 20);
    auto base = alone.run(60 * s, f.data);
    ASSERT_TRUE(base.all_identical);
    sim::network mixed(5, f.prepared, cfg, {healthy, healthy, healthy, slow}, 1u << 20);
    auto r = mixed.run(60 * s, f.data);
    EXPECT_TRUE(r.all_identical);
    for (int i = 0; i < 3; ++i) {
        EXPECT_LE(static_cast<double>(r.complete_ns[i]), 1.05 * static_cast<double>(base.complete_ns[i]) + 5 * ms)
            << "healthy receiver " << i << " was slowed";
    }
    EXPECT_GT(r.complete_ns[3], r.complete_ns[0]);
    bool told = false;
    for (const auto& rep : mixed.sender().receivers()) {
        told |= rep.id == mixed.receiver(3).id() && rep.told_slow;
    }
    EXPECT_TRUE(told) << "the sender should say the slow receiver fell below the floor";
}

// One receiver on a link that drops 5% must not drag the healthy ones to its pace: the
// repairs only it needs take a bounded share of the main pass, the rest wait for catch-up.
TEST_F(session_sim, lossy_minority_receiver_does_not_slow_the_rest) {
    fixture f(32u << 20, 1u << 20);
    auto cfg = base_config(900'000'000);
    sim::link_profile healthy;
    sim::link_profile lossy;
    lossy.loss = 0.05;
    sim::network alone(7, f.prepared, cfg, std::vector<sim::link_profile>(3, healthy));
    auto base = alone.run(60 * s, f.data);
    ASSERT_TRUE(base.all_identical);
    sim::network mixed(7, f.prepared, cfg, {healthy, healthy, healthy, lossy});
    auto r = mixed.run(60 * s, f.data);
    EXPECT_TRUE(r.all_identical);
    for (int i = 0; i < 3; ++i) {
        const double slowdown = static_cast<double>(r.complete_ns[i]) / static_cast<double>(base.complete_ns[i]);
        std::printf("healthy receiver %d: %.3fx the time without the lossy one\n", i, slowdown);
        EXPECT_LE(slowdown, 1.05) << "healthy receiver " << i << " was slowed";
    }
    std::printf("lossy receiver: %.3fx\n",
                static_cast<double>(r.complete_ns[3]) / static_cast<double>(base.complete_ns[0]));
}

TEST_F(session_sim, slow_receiver_told_to_fall_back_stops_with_a_clear_error) {
    fixture f(8u << 20);
    auto cfg = base_config();
    cfg.rate_floor_kBps = 20'000;
    cfg.slow_policy = session::slow_receiver_policy::fall_back;
    sim::link_profile slow;
    slow.drain_Bps = 5e6;
    sim::network net(9, f.prepared, cfg, {sim::link_profile{}, slow}, 1u << 20);
    auto r = net.run(30 * s, f.data);
    EXPECT_EQ(net.receiver(0).phase(), session::receiver_phase::finished);
    ASSERT_EQ(net.receiver(1).phase(), session::receiver_phase::failed);
    EXPECT_EQ(net.receiver(1).failure().code(), errc::cancelled);
    EXPECT_NE(net.receiver(1).failure().describe().find("unicast"), std::string::npos);
    EXPECT_TRUE(net.sender().finished());
    (void)r;
}

TEST_F(session_sim, corrupted_symbols_cost_repairs_never_a_bad_target) {
    fixture f;
    std::mt19937 rng(99);
    sim::network net(13, f.prepared, base_config(), std::vector<sim::link_profile>(3));
    std::uint64_t corrupted = 0;
    net.tamper = [&](std::vector<std::byte>& p) {
        // Flip a byte in 0.5% of data symbols, as a broken switch or an attacker would.
        if (p.size() > wire::data_header_size && static_cast<std::uint8_t>(p[3]) == 1 && rng() % 200 == 0) {
            p[wire::data_header_size + rng() % (p.size() - wire::data_header_size)] ^= std::byte{0x5A};
            ++corrupted;
        }
    };
    auto r = net.run(60 * s, f.data);
    ASSERT_GT(corrupted, 0u);
    EXPECT_TRUE(r.all_identical);
    std::uint64_t rejected = 0;
    for (int i = 0; i < 3; ++i) {
        rejected += net.receiver(i).stats().chunks_rejected;
    }
    EXPECT_GT(rejected, 0u);  // caught by the hash, asked for again
}

TEST_F(session_sim, receivers_with_the_wrong_key_never_join) {
    fixture f(256u << 10);
    auto cfg = base_config();
    sim::network net(17, f.prepared, cfg, {sim::link_profile{}});
    // The receiver was built with the sender's key; rebuild one with another key by
    // checking that a forged announce (re-tagged with a wrong key) is ignored.
    net.tamper = [](std::vector<std::byte>& p) {
        if (static_cast<std::uint8_t>(p[3]) == 2) {
            p[p.size() - 1] ^= std::byte{1};  // break every announce's tag
        }
    };
    auto r = net.run(3 * s, f.data);
    EXPECT_FALSE(r.all_identical);
    EXPECT_EQ(net.receiver(0).phase(), session::receiver_phase::waiting_announce);
    EXPECT_GT(net.receiver(0).stats().foreign_packets, 0u);
}

TEST_F(session_sim, sender_killed_mid_stream_receivers_fail_in_bounded_time) {
    fixture f(4u << 20);
    sim::network net(19, f.prepared, base_config(), std::vector<sim::link_profile>(2));
    std::uint64_t sent = 0;
    net.tamper = [&](std::vector<std::byte>& p) {
        if (++sent > 1000) {
            p.assign(4, std::byte{0});  // the sender is gone: nothing it sends arrives intact
        }
    };
    auto r = net.run(20 * s, f.data);
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(net.receiver(i).phase(), session::receiver_phase::failed);
        EXPECT_EQ(net.receiver(i).failure().code(), errc::peer_gone);
        EXPECT_LT(net.receiver(i).chunks_written(), f.prepared.manifest.chunks.size());
    }
    EXPECT_FALSE(r.all_identical);
}

TEST_F(session_sim, dead_receiver_does_not_hold_the_others) {
    fixture f;
    sim::link_profile dead;
    dead.alive = false;
    sim::network net(23, f.prepared, base_config(), {sim::link_profile{}, sim::link_profile{}, dead});
    auto r = net.run(20 * s, f.data);
    EXPECT_EQ(net.receiver(0).phase(), session::receiver_phase::finished);
    EXPECT_EQ(net.receiver(1).phase(), session::receiver_phase::finished);
    EXPECT_TRUE(net.sender().finished());
    EXPECT_LT(r.elapsed_ns, 5 * s);
}

TEST_F(session_sim, adaptive_rate_keeps_its_pace_under_random_loss) {
    // 5% loss on every link whatever the rate: cutting the rate would not help, so the
    // sender must learn that and stay near its configured rate.
    fixture f(16u << 20, 256u << 10, 4);
    auto cfg = base_config(400'000'000);
    cfg.adaptive_rate = true;
    sim::link_profile l;
    l.loss = 0.05;
    sim::network net(29, f.prepared, cfg, std::vector<sim::link_profile>(4, l));
    auto r = net.run(60 * s, f.data);
    EXPECT_TRUE(r.all_identical);
    EXPECT_GE(net.sender().rate_bps(), 300'000'000u);
    EXPECT_GE(net.sender().stats().rate_bps_lowest, 300'000'000u);
    // 16 MiB at 50 MB/s is ~0.35 s of data; a collapsed rate would take many seconds.
    EXPECT_LT(r.elapsed_ns, 2 * s);
}

TEST_F(session_sim, adaptive_rate_comes_down_to_a_bottleneck) {
    // Every receiver sits behind a 20 MB/s link; the sender starts at 50 MB/s.
    fixture f(16u << 20, 256u << 10, 5);
    sim::link_profile l;
    l.capacity_Bps = 20e6;
    auto fixed = base_config(400'000'000);
    sim::network blind(31, f.prepared, fixed, std::vector<sim::link_profile>(3, l));
    auto rb = blind.run(120 * s, f.data);
    ASSERT_TRUE(rb.all_identical);  // repairs make it whatever the rate
    auto cfg = fixed;
    cfg.adaptive_rate = true;
    sim::network steered(31, f.prepared, cfg, std::vector<sim::link_profile>(3, l));
    auto r = steered.run(120 * s, f.data);
    EXPECT_TRUE(r.all_identical);
    EXPECT_LT(steered.sender().stats().rate_bps_lowest, 250'000'000u);  // towards 160 Mbit/s
    EXPECT_LT(steered.sender().stats().repair_packets, blind.sender().stats().repair_packets);
}

// Habit 1: the per-packet paths do not allocate once a session is under way.
TEST_F(session_sim, steady_state_packet_paths_do_not_allocate) {
    fixture f(8u << 20, 256u << 10, 2);
    auto cfg = base_config();
    cfg.wait_max_ns = 0;
    auto snd = session::sender::create(cfg, f.prepared.objects(), f.prepared.manifest_sha256);
    ASSERT_TRUE(snd);
    session::receiver_config rc;
    rc.key = cfg.key;
    rc.receiver_id = 77;
    auto rcv = session::receiver::create(rc);
    ASSERT_TRUE(rcv);
    std::vector<std::byte> storage(32 * 2048);
    io::packet packets[32];
    std::byte status_buffer[1472];
    std::int64_t now = 0;
    std::size_t packets_seen = 0;
    std::size_t allocations_before = 0;
    std::mt19937 rng(5);
    session::completed_chunk c;
    std::vector<std::byte> out(256u << 10);
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    while ((*rcv)->phase() == session::receiver_phase::waiting_announce ||
           (*rcv)->phase() == session::receiver_phase::waiting_manifest ||
           (*rcv)->phase() == session::receiver_phase::receiving) {
        if (allocations_before == 0 && (*rcv)->phase() == session::receiver_phase::receiving &&
            packets_seen > 500) {
            allocations_before = test::allocation_count();  // manifest in, buffers made
        }
        for (std::size_t i = 0; i < 32; ++i) {
            packets[i].data = storage.data() + i * 2048;
        }
        const std::size_t n = (*snd)->produce(packets, 32, now);
        for (std::size_t i = 0; i < n; ++i, ++packets_seen) {
            if (rng() % 50 != 0) {  // 2% loss, so FEC and repairs run too
                (*rcv)->on_packet({packets[i].data, packets[i].size}, now);
            }
        }
        io::packet st;
        st.data = status_buffer;
        if ((*rcv)->produce(&st, 1, now) == 1) {
            (*snd)->on_packet({st.data, st.size}, 1, now);
        }
        while ((*rcv)->take_chunk(c)) {
            const auto& e = (*rcv)->manifest()->chunks[c.chunk];
            auto v = session::verify_and_decode(e, c.wire, {out.data(), e.raw_size}, dctx);
            (*rcv)->chunk_done(c.chunk, v.has_value(), e.raw_size, now);
        }
        now += 100'000;
        ASSERT_LT(now, 30 * s);
    }
    ZSTD_freeDCtx(dctx);
    EXPECT_NE((*rcv)->phase(), session::receiver_phase::failed);
    ASSERT_GT(allocations_before, 0u);
    EXPECT_EQ(test::allocation_count(), allocations_before);
    EXPECT_GT((*snd)->stats().repair_packets, 0u);
}

// The writer's resume scan: a target that already holds some chunks (one of them damaged)
// reports exactly the intact ones as present, and the rest written makes the whole image.
class writer_resume : public ::testing::Test {
protected:
    void SetUp() override {
        log::init(log::level::warn);
        char name[] = "/tmp/shoal-writer-XXXXXX";
        const int fd = mkstemp(name);
        ASSERT_GE(fd, 0);
        close(fd);
        path = name;
    }
    void TearDown() override { std::remove(path.c_str()); }

    // Runs a writer over the target until every chunk came back; returns the present ones.
    std::vector<std::uint32_t> run(const fixture& f, bool resume) {
        auto w = session::writer::open(path, f.prepared.manifest, 0, resume);
        EXPECT_TRUE(w) << w.err().describe();
        if (!w) {
            return {};
        }
        const std::size_t count = f.prepared.manifest.chunks.size();
        std::vector<std::uint8_t> done(count, 0);
        std::vector<std::uint32_t> present;
        std::size_t done_count = 0;
        std::size_t next_submit = 0;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (done_count < count && std::chrono::steady_clock::now() < deadline) {
            session::write_done d[16];
            const std::size_t n = (*w)->collect(d, 16);
            for (std::size_t i = 0; i < n; ++i) {
                EXPECT_TRUE(d[i].written);
                if (d[i].present) {
                    present.push_back(d[i].chunk);
                }
                if (!done[d[i].chunk]) {
                    done[d[i].chunk] = 1;
                    ++done_count;
                }
            }
            // Like the receiver: chunks it still lacks go to the writer, after the scan
            // had its say for the ones it found (a chunk found and sent anyway is harmless).
            if (n == 0 && next_submit < count) {
                if (!done[next_submit]) {
                    if (!(*w)->submit(static_cast<std::uint32_t>(next_submit), f.prepared.chunk_wire[next_submit])) {
                        continue;
                    }
                }
                ++next_submit;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        EXPECT_EQ(done_count, count);
        EXPECT_EQ((*w)->failure(), nullptr);
        return present;
    }

    std::vector<std::byte> read_target() const {
        std::ifstream in(path, std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::vector<std::byte> out(bytes.size());
        std::memcpy(out.data(), bytes.data(), bytes.size());
        return out;
    }

    std::string path;
};

TEST_F(writer_resume, keeps_intact_chunks_and_rewrites_the_rest) {
    fixture f(4u << 20, 256u << 10);
    const std::size_t chunks = f.prepared.manifest.chunks.size();
    ASSERT_EQ(chunks, 16u);
    // An interrupted run left the first half; then a bit flipped in chunk 3.
    {
        std::vector<std::byte> half(f.data.begin(), f.data.begin() + (2u << 20));
        half[3 * (256u << 10) + 100] ^= std::byte{1};
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(half.data()), static_cast<std::streamsize>(half.size()));
    }
    auto present = run(f, true);
    std::sort(present.begin(), present.end());
    EXPECT_EQ(present, (std::vector<std::uint32_t>{0, 1, 2, 4, 5, 6, 7}));
    EXPECT_EQ(read_target(), f.data);
}

TEST_F(writer_resume, without_resume_nothing_counts_as_present) {
    fixture f(2u << 20, 256u << 10);
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(f.data.data()), static_cast<std::streamsize>(f.data.size()));
    }
    EXPECT_TRUE(run(f, false).empty());
    EXPECT_EQ(read_target(), f.data);
}

// A receiver told that chunks are already on its target never takes them again, asks
// only for the rest, and completes with them counted.
TEST_F(session_sim, chunks_present_on_the_target_are_never_received_again) {
    fixture f(4u << 20, 256u << 10, 4);
    auto cfg = base_config();
    cfg.wait_max_ns = 0;
    auto snd = session::sender::create(cfg, f.prepared.objects(), f.prepared.manifest_sha256);
    ASSERT_TRUE(snd);
    session::receiver_config rc;
    rc.key = cfg.key;
    auto rcv = session::receiver::create(rc);
    ASSERT_TRUE(rcv);
    std::vector<std::byte> storage(32 * 2048);
    io::packet packets[32];
    std::byte status_buffer[1472];
    std::vector<std::byte> target(f.data.size(), std::byte{0});
    std::mt19937 rng(9);
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    bool declared = false;
    std::uint32_t even_count = 0;
    std::uint64_t even_bytes = 0;
    std::int64_t now = 0;
    while ((*rcv)->phase() != session::receiver_phase::finished &&
           (*rcv)->phase() != session::receiver_phase::failed && now < 30 * s) {
        if (!declared && (*rcv)->manifest() != nullptr) {
            declared = true;
            const auto& chunks = (*rcv)->manifest()->chunks;
            for (std::uint32_t i = 0; i < chunks.size(); i += 2) {
                (*rcv)->chunk_present(i, chunks[i].raw_size);
                even_count++;
                even_bytes += chunks[i].raw_size;
            }
        }
        for (std::size_t i = 0; i < 32; ++i) {
            packets[i].data = storage.data() + i * 2048;
        }
        const std::size_t n = (*snd)->produce(packets, 32, now);
        for (std::size_t i = 0; i < n; ++i) {
            if (rng() % 50 != 0) {
                (*rcv)->on_packet({packets[i].data, packets[i].size}, now);
            }
        }
        io::packet st;
        st.data = status_buffer;
        if ((*rcv)->produce(&st, 1, now) == 1) {
            (*snd)->on_packet({st.data, st.size}, 1, now);
        }
        session::completed_chunk c;
        while ((*rcv)->take_chunk(c)) {
            EXPECT_EQ(c.chunk % 2, 1u) << "chunk " << c.chunk << " was present, yet received again";
            const auto& e = (*rcv)->manifest()->chunks[c.chunk];
            auto v = session::verify_and_decode(e, c.wire, {target.data() + e.target_offset, e.raw_size}, dctx);
            (*rcv)->chunk_done(c.chunk, v.has_value(), e.raw_size, now);
        }
        now += 100'000;
    }
    ZSTD_freeDCtx(dctx);
    ASSERT_EQ((*rcv)->phase(), session::receiver_phase::finished);
    EXPECT_EQ((*rcv)->stats().chunks_present, even_count);
    EXPECT_EQ((*rcv)->stats().bytes_present, even_bytes);
    EXPECT_EQ((*rcv)->stats().bytes_written + even_bytes, f.data.size());
    // The odd chunks arrived intact; the even ones were never touched.
    const std::size_t chunk_bytes = 256u << 10;
    for (std::size_t at = 0; at < f.data.size(); at += chunk_bytes) {
        const bool odd = (at / chunk_bytes) % 2 == 1;
        const bool same = std::memcmp(target.data() + at, f.data.data() + at, chunk_bytes) == 0;
        EXPECT_EQ(same, odd) << "chunk at " << at;
    }
}

}  // namespace
}  // namespace shoal
