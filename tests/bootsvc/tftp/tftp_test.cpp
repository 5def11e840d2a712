#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "rootdir/root_dir.h"
#include "test_client.h"
#include "tftp/file_cache.h"
#include "tftp/protocol.h"
#include "tftp/server.h"

namespace shoal::tftp {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> bytes(std::string_view s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

// The bytes of a string literal, embedded NULs included, without its final NUL.
template <std::size_t N>
std::string lit(const char (&s)[N]) {
    return std::string(s, N - 1);
}

std::string text(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// ---- wire format ----------------------------------------------------------------------

TEST(protocol, parses_a_request_with_every_option) {
    auto p =
        bytes(lit("\0\1pxe/ipxe.efi\0OCTET\0BlkSize\0"
                  "1468\0tsize\0"
                  "0\0"
                  "timeout\0"
                  "3\0windowsize\0"
                  "4\0"));
    auto r = parse_request(p);
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_EQ(r->op, opcode::rrq);
    EXPECT_EQ(r->filename, "pxe/ipxe.efi");
    EXPECT_EQ(r->mode, transfer_mode::octet);
    EXPECT_EQ(r->blksize, 1468);
    EXPECT_EQ(r->tsize, 0u);
    EXPECT_EQ(r->timeout_s, 3);
    EXPECT_EQ(r->windowsize, 4);
    EXPECT_EQ(r->ignored_option_count, 0);
}

TEST(protocol, encodes_a_request_byte_for_byte) {
    request r;
    r.filename = "a";
    r.blksize = 1428;
    r.tsize = 0;
    std::byte out[64];
    std::size_t n = encode_request(out, r);
    EXPECT_EQ(text({out, n}), lit("\0\1a\0octet\0blksize\0"
                                  "1428\0tsize\0"
                                  "0\0"));
    auto back = parse_request(std::span<const std::byte>(out, n));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->blksize, 1428);
    EXPECT_EQ(back->tsize, 0u);
    EXPECT_FALSE(back->windowsize);
}

TEST(protocol, drops_bad_option_values_and_keeps_the_request) {
    // blksize below 8, timeout 0, a signed windowsize, an unknown option, a duplicate.
    auto p =
        bytes(lit("\0\1f\0octet\0blksize\0"
                  "7\0timeout\0"
                  "0\0windowsize\0-1\0"
                  "multicast\0\0tsize\0"
                  "0\0tsize\0"
                  "9\0"));
    auto r = parse_request(p);
    ASSERT_TRUE(r) << r.err().describe();
    EXPECT_FALSE(r->blksize);
    EXPECT_FALSE(r->timeout_s);
    EXPECT_FALSE(r->windowsize);
    EXPECT_EQ(r->tsize, 0u);
    EXPECT_EQ(r->ignored_option_count, 5);
}

TEST(protocol, clamps_blksize_and_reads_padding_as_the_end) {
    auto p =
        bytes(lit("\0\1f\0netascii\0blksize\0"
                  "99999\0\0\0\0\0"));
    auto r = parse_request(p);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->mode, transfer_mode::netascii);
    EXPECT_EQ(r->blksize, blksize_max);
}

TEST(protocol, refuses_broken_requests) {
    struct bad {
        std::string packet;
        errc code;
    };
    const bad cases[] = {
        {lit(""), errc::truncated},
        {lit("\0"), errc::truncated},
        {lit("\0\1"), errc::truncated},
        {lit("\0\1file"), errc::truncated},
        {lit("\0\1file\0octet"), errc::truncated},
        {lit("\0\1\0octet\0"), errc::malformed},
        {lit("\0\1f\0mail\0"), errc::unsupported},
        {lit("\0\3f\0octet\0"), errc::malformed},
        {lit("\0\11f\0octet\0"), errc::malformed},
    };
    for (const auto& c : cases) {
        auto p = bytes(c.packet);
        auto r = parse_request(p);
        ASSERT_FALSE(r) << "accepted " << c.packet.size() << " bytes";
        EXPECT_EQ(r.err().code(), c.code) << r.err().describe();
    }
}

TEST(protocol, oack_and_error_round_trip) {
    option_reply reply;
    reply.blksize = 1468;
    reply.tsize = 1048576;
    reply.windowsize = 4;
    std::byte out[128];
    std::size_t n = encode_oack(out, reply);
    EXPECT_EQ(text({out, n}), lit("\0\6blksize\0"
                                  "1468\0tsize\0"
                                  "1048576\0windowsize\0"
                                  "4\0"));
    auto back = parse_oack(std::span<const std::byte>(out, n));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->tsize, 1048576u);

    n = encode_error(out, error_code::file_not_found, "file not found");
    EXPECT_EQ(text({out, n}), lit("\0\5\0\1file not found\0"));
    auto e = parse_error(std::span<const std::byte>(out, n));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, error_code::file_not_found);
    EXPECT_EQ(e->message, "file not found");
    // A message too long for the buffer is cut, never overflows it.
    std::byte small[8];
    n = encode_error(small, error_code::not_defined, "a long message");
    EXPECT_EQ(n, 8u);
    EXPECT_EQ(text({small, n}), lit("\0\5\0\0a l\0"));
}

// ---- confinement ------------------------------------------------------------------------

class scratch_root : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/shoal-tftp-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        _base = tmpl;
        _root = _base / "root";
        fs::create_directories(_root / "sub");
        write(_root / "hello.txt", "hello\n");
        write(_root / "sub" / "inner.bin", "inner");
        write(_base / "secret.txt", "outside the root");
        fs::create_symlink("../secret.txt", _root / "up-link");
        fs::create_symlink("/etc/passwd", _root / "abs-link");
        fs::create_symlink("..", _root / "parent-dir");
        fs::create_symlink("sub/inner.bin", _root / "inner-link");
        fs::create_symlink("/proc/self/root/etc/passwd", _root / "proc-link");
        ASSERT_EQ(::mkfifo((_root / "fifo").c_str(), 0600), 0);
    }
    void TearDown() override { fs::remove_all(_base); }

    static void write(const fs::path& p, std::string_view content) {
        std::ofstream(p, std::ios::binary)
            .write(content.data(), static_cast<std::streamsize>(content.size()));
    }

    fs::path _base;
    fs::path _root;
};

TEST_F(scratch_root, opens_only_regular_files_beneath_the_root) {
    auto root = bootsvc::root_dir::open(_root.string());
    ASSERT_TRUE(root) << root.err().describe();

    EXPECT_TRUE(root->open_file("hello.txt"));
    EXPECT_TRUE(root->open_file("/hello.txt"));  // leading slash means the root
    EXPECT_TRUE(root->open_file("//sub/inner.bin"));
    EXPECT_TRUE(root->open_file("inner-link"));  // a symlink that stays inside

    struct refused {
        const char* name;
        errc code;
    };
    const refused cases[] = {
        {"../secret.txt", errc::invalid_argument},
        {"sub/../../secret.txt", errc::invalid_argument},
        {"sub/../hello.txt", errc::invalid_argument},  // stays inside, still refused
        {"..", errc::invalid_argument},
        {"up-link", errc::invalid_argument},
        {"abs-link", errc::invalid_argument},
        {"parent-dir/secret.txt", errc::invalid_argument},
        {"proc-link", errc::invalid_argument},
        {"fifo", errc::invalid_argument},  // must not block, must not open
        {"sub", errc::invalid_argument},
        {"/", errc::invalid_argument},
        {"", errc::invalid_argument},
        {"/etc/passwd", errc::not_found},  // means <root>/etc/passwd
        {"missing", errc::not_found},
        {"hello.txt/x", errc::not_found},
    };
    for (const auto& c : cases) {
        auto f = root->open_file(c.name);
        ASSERT_FALSE(f) << "opened '" << c.name << "'";
        EXPECT_EQ(f.err().code(), c.code) << c.name << ": " << f.err().describe();
    }
    std::string nul("hello.txt\0x", 11);
    EXPECT_FALSE(root->open_file(nul));
    EXPECT_FALSE(root->open_file(std::string(bootsvc::root_dir::path_size_max + 1, 'a')));
}

TEST_F(scratch_root, one_open_copy_per_file_until_it_is_replaced) {
    auto root = bootsvc::root_dir::open(_root.string());
    ASSERT_TRUE(root);
    file_cache cache(*root, 4);
    auto a = cache.open("hello.txt");
    auto b = cache.open("/hello.txt");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->get(), b->get());
    EXPECT_EQ((*a)->fd(), (*b)->fd());
    EXPECT_EQ(cache.hit_count(), 1u);

    // Replaced by rename (how package managers and `install` do it): a new copy.
    write(_root / "hello.new", "hello again\n");
    fs::rename(_root / "hello.new", _root / "hello.txt");
    auto c = cache.open("hello.txt");
    ASSERT_TRUE(c);
    EXPECT_NE(c->get(), a->get());
    EXPECT_EQ((*c)->size_bytes(), 12u);
    EXPECT_EQ((*a)->size_bytes(), 6u);  // the old copy lives on for its readers

    // Idle files beyond the limit are closed; files in use are never.
    for (int i = 0; i < 8; ++i) {
        write(_root / fmt::format("f{}", i), "x");
        ASSERT_TRUE(cache.open(fmt::format("f{}", i)));
    }
    // Two in use, four idle, and the one released since the last open.
    EXPECT_LE(cache.open_count(), 4u + 2u + 1u);
}

// ---- the server on loopback -----------------------------------------------------------

class running_server : public scratch_root {
protected:
    void start(server_config config = {}) {
        config.root_dir = _root.string();
        config.address = "127.0.0.1";
        config.port = 0;
        auto s = server::create(config);
        ASSERT_TRUE(s) << s.err().describe();
        _server = std::move(*s);
        _thread = std::thread([this] { ASSERT_TRUE(_server->run()); });
    }
    void TearDown() override {
        if (_server) {
            _server->stop();
            _thread.join();
        }
        scratch_root::TearDown();
    }
    std::vector<std::byte> make_file(const std::string& name, std::size_t size, unsigned seed) {
        std::vector<std::byte> data(size);
        std::mt19937 rng(seed);
        for (auto& b : data) {
            b = static_cast<std::byte>(rng());
        }
        std::ofstream(_root / name, std::ios::binary)
            .write(reinterpret_cast<const char*>(data.data()),
                   static_cast<std::streamsize>(data.size()));
        return data;
    }
    // Waits (bounded) for the server's counters to show what a test expects.
    template <class Pred>
    bool wait_stats(Pred pred, int timeout_ms = 5000) {
        auto until = time::deadline::after_ms(timeout_ms);
        while (!until.expired()) {
            if (pred(_server->stats())) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return false;
    }

    std::unique_ptr<server> _server;
    std::thread _thread;
};

TEST_F(running_server, serves_the_bytes_with_and_without_each_option) {
    start();
    // Sizes around block edges: empty, one short block, exactly one block, many.
    for (std::size_t size : {0u, 100u, 512u, 1468u * 4, 300'000u}) {
        auto data = make_file("f.bin", size, static_cast<unsigned>(size));
        struct variant {
            const char* what;
            test::fetch_options o;
        };
        std::vector<variant> variants(6);
        variants[0].what = "plain";
        variants[1].what = "blksize";
        variants[1].o.blksize = 1468;
        variants[2].what = "tsize";
        variants[2].o.tsize = 0;
        variants[3].what = "timeout";
        variants[3].o.timeout_s = 2;
        variants[4].what = "windowsize";
        variants[4].o.windowsize = 8;
        variants[5].what = "all";
        variants[5].o.blksize = 1024;
        variants[5].o.tsize = 0;
        variants[5].o.timeout_s = 1;
        variants[5].o.windowsize = 16;
        for (const auto& v : variants) {
            auto got = test::fetch(_server->port(), "f.bin", v.o);
            ASSERT_TRUE(got.ok) << v.what << " size " << size << " " << got.error_message;
            EXPECT_EQ(got.data, data) << v.what << " size " << size;
            if (v.o.tsize && size > 0) {
                ASSERT_TRUE(got.oack && got.oack->tsize) << v.what;
                EXPECT_EQ(*got.oack->tsize, size);
            }
            if (v.o.windowsize) {
                ASSERT_TRUE(got.oack && got.oack->windowsize);
                EXPECT_EQ(*got.oack->windowsize, *v.o.windowsize);
            }
        }
    }
    EXPECT_TRUE(wait_stats([](const server_stats& s) { return s.completed == 30; }))
        << _server->stats().completed;
    EXPECT_EQ(_server->stats().failed, 0u);
}

TEST_F(running_server, block_numbers_roll_over_past_65535) {
    start();
    // blksize 8: 70000 blocks, so the 16-bit number wraps once.
    auto data = make_file("big.bin", 8 * 70'000 + 3, 7);
    test::fetch_options o;
    o.blksize = 8;
    o.windowsize = 32;
    auto got = test::fetch(_server->port(), "big.bin", o);
    ASSERT_TRUE(got.ok);
    EXPECT_EQ(got.data, data);
}

TEST_F(running_server, recovers_lost_blocks_inside_a_window) {
    server_config config;
    config.timeout_ms = 100;
    start(config);
    auto data = make_file("lossy.bin", 100'000, 3);
    for (std::uint16_t window : {1, 4, 16}) {
        test::fetch_options o;
        o.blksize = 1000;
        o.windowsize = window;
        o.receive_timeout_ms = 150;
        // Lose every 13th block the first time it arrives.
        o.drop = [](std::uint64_t block) { return block % 13 == 5; };
        auto got = test::fetch(_server->port(), "lossy.bin", o);
        ASSERT_TRUE(got.ok) << "window " << window;
        EXPECT_EQ(got.data, data) << "window " << window;
    }
    EXPECT_GT(_server->stats().retransmitted_packets, 0u);
}

TEST_F(running_server, netascii_turns_line_ends_into_cr_lf) {
    start();
    write(_root / "text", "a\nb\rc\n");
    test::fetch_options o;
    o.mode = transfer_mode::netascii;
    o.tsize = 0;
    auto got = test::fetch(_server->port(), "text", o);
    ASSERT_TRUE(got.ok);
    EXPECT_EQ(text(got.data), lit("a\r\nb\r\0c\r\n"));
    // No tsize for netascii: its size is unknown until converted. Nothing else was asked,
    // so no OACK either.
    EXPECT_FALSE(got.oack);
}

TEST_F(running_server, a_size_probe_ended_with_error_8_then_the_real_request) {
    start();
    auto data = make_file("ipxe.efi", 70'000, 11);
    // What OVMF does: tsize + blksize + windowsize, error 8 after the OACK, then again.
    test::fetch_options probe;
    probe.tsize = 0;
    probe.blksize = 1468;
    probe.windowsize = 4;
    probe.abort_after_oack = true;
    auto first = test::fetch(_server->port(), "ipxe.efi", probe);
    ASSERT_TRUE(first.ok && first.oack && first.oack->tsize);
    EXPECT_EQ(*first.oack->tsize, data.size());
    test::fetch_options real;
    real.blksize = 1468;
    real.windowsize = 4;
    auto second = test::fetch(_server->port(), "ipxe.efi", real);
    ASSERT_TRUE(second.ok);
    EXPECT_EQ(second.data, data);
    EXPECT_TRUE(wait_stats([](const server_stats& s) {
        return s.option_probes == 1 && s.completed == 1 && s.active == 0;
    }));
    EXPECT_EQ(_server->stats().failed, 0u);
    // Both requests read the one open copy.
    EXPECT_EQ(_server->stats().file_cache_misses, 1u);
    EXPECT_EQ(_server->stats().file_cache_hits, 1u);
}

TEST_F(running_server, refuses_hostile_and_impossible_requests_with_errors) {
    start();
    struct refused {
        const char* name;
        error_code code;
    };
    const refused cases[] = {
        {"../secret.txt", error_code::access_violation},
        {"up-link", error_code::access_violation},
        {"abs-link", error_code::access_violation},
        {"parent-dir/secret.txt", error_code::access_violation},
        {"proc-link", error_code::access_violation},
        {"fifo", error_code::access_violation},
        {"sub", error_code::access_violation},
        {"/etc/passwd", error_code::file_not_found},
        {"missing", error_code::file_not_found},
    };
    for (const auto& c : cases) {
        auto got = test::fetch(_server->port(), c.name, {});
        EXPECT_FALSE(got.ok) << c.name;
        EXPECT_TRUE(got.data.empty()) << c.name;
        ASSERT_TRUE(got.error) << c.name;
        EXPECT_EQ(*got.error, c.code) << c.name << ": " << got.error_message;
    }

    // A write request, a bad mode and a truncated request, sent raw.
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(_server->port());
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const std::pair<std::string, error_code> raw[] = {
        {lit("\0\2hello.txt\0octet\0"), error_code::access_violation},
        {lit("\0\1hello.txt\0mail\0"), error_code::illegal_operation},
        {lit("\0\1hello.txt"), error_code::illegal_operation},
    };
    for (const auto& [packet, code] : raw) {
        ::sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
        std::byte buf[600];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        ASSERT_GT(n, 0);
        auto e = parse_error(std::span<const std::byte>(buf, static_cast<std::size_t>(n)));
        ASSERT_TRUE(e);
        EXPECT_EQ(e->code, code);
    }
    // A stray ACK to port 69 is not answered at all.
    std::string ack("\0\4\0\1", 4);
    ::sendto(fd, ack.data(), ack.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    timeval short_tv{0, 200'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &short_tv, sizeof short_tv);
    std::byte buf[64];
    EXPECT_LT(::recv(fd, buf, sizeof buf, 0), 0);
    ::close(fd);
    EXPECT_EQ(_server->stats().refused, 12u);
    EXPECT_EQ(_server->stats().bytes_sent, 0u);
}

TEST_F(running_server, a_silent_client_is_given_up_after_its_retries) {
    server_config config;
    config.timeout_ms = 20;
    config.retries_max = 3;
    start(config);
    // Ask, then never acknowledge anything.
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(_server->port());
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string rrq("\0\1hello.txt\0octet\0", 18);
    ::sendto(fd, rrq.data(), rrq.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    EXPECT_TRUE(wait_stats([](const server_stats& s) { return s.failed == 1 && s.active == 0; }));
    EXPECT_EQ(_server->stats().retransmitted_packets, 3u);
    // The first send and the 3 retransmissions all arrived, and nothing more.
    int count = 0;
    std::byte buf[600];
    while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        ++count;
    }
    EXPECT_EQ(count, 4);
    ::close(fd);
}

TEST_F(running_server, a_stalled_client_does_not_delay_the_others) {
    server_config config;
    config.timeout_ms = 3000;  // the stalled transfer stays open for the whole test
    start(config);
    auto data = make_file("kernel", 2'000'000, 5);
    // Several clients start and then stop answering mid-file.
    std::vector<int> stalled;
    for (int i = 0; i < 8; ++i) {
        int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(_server->port());
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string rrq("\0\1kernel\0octet\0", 15);
        ::sendto(fd, rrq.data(), rrq.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
        stalled.push_back(fd);
    }
    ASSERT_TRUE(wait_stats([](const server_stats& s) { return s.active == 8; }));
    // Meanwhile four clients fetch the same file in parallel, well within the stalled
    // transfers' first timeout.
    auto t0 = time::monotonic_ns();
    std::vector<std::thread> clients;
    std::vector<test::fetch_result> results(4);
    for (int i = 0; i < 4; ++i) {
        clients.emplace_back([&, i] {
            test::fetch_options o;
            o.blksize = 1468;
            o.windowsize = 8;
            results[static_cast<std::size_t>(i)] = test::fetch(_server->port(), "kernel", o);
        });
    }
    for (auto& c : clients) {
        c.join();
    }
    auto elapsed_ms = (time::monotonic_ns() - t0) / time::ns_per_ms;
    for (const auto& r : results) {
        ASSERT_TRUE(r.ok);
        EXPECT_EQ(r.data, data);
    }
    EXPECT_LT(elapsed_ms, 3000) << "the fetches waited for the stalled transfers";
    // A client returns once it has the last block; the server closes that transfer when the
    // final ACK reaches it, a moment later: the stalled ones stay open, the others close.
    EXPECT_TRUE(wait_stats([](const server_stats& s) { return s.active == 8; }))
        << "active transfers: " << _server->stats().active;
    // Twelve transfers of one file, one open copy.
    EXPECT_EQ(_server->stats().file_cache_misses, 1u);
    for (int fd : stalled) {
        ::close(fd);
    }
}

TEST_F(running_server, refuses_beyond_transfers_max) {
    server_config config;
    config.transfers_max = 2;
    config.timeout_ms = 2000;
    start(config);
    std::vector<int> fds;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(_server->port());
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string rrq("\0\1hello.txt\0octet\0", 18);
    for (int i = 0; i < 2; ++i) {
        fds.push_back(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ::sendto(fds.back(), rrq.data(), rrq.size(), 0, reinterpret_cast<sockaddr*>(&to),
                 sizeof to);
    }
    ASSERT_TRUE(wait_stats([](const server_stats& s) { return s.active == 2; }));
    auto got = test::fetch(_server->port(), "hello.txt", {});
    ASSERT_TRUE(got.error);
    EXPECT_EQ(*got.error, error_code::not_defined);
    EXPECT_EQ(got.error_message, "server busy, try again");
    for (int fd : fds) {
        ::close(fd);
    }
}

TEST(server, refuses_a_missing_root_and_a_bad_address) {
    server_config config;
    config.root_dir = "/nonexistent/shoal";
    config.port = 0;
    auto s = server::create(config);
    ASSERT_FALSE(s);
    EXPECT_NE(s.err().describe().find("/nonexistent/shoal"), std::string::npos);
    config.root_dir = "/tmp";
    config.address = "not-an-address";
    s = server::create(config);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().code(), errc::invalid_argument);
}

}  // namespace
}  // namespace shoal::tftp
