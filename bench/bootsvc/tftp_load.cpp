// TFTP load generator for bench/e2e/tftp.py: N clients at once, each fetching one file
// again and again with the same options, from one epoll loop. Every byte received is
// compared with the expected file, so a fast wrong server cannot win. Prints one JSON line:
//   {"transfers": T, "failures": F, "bytes": B, "seconds": S}
// Usage: tftp_load --server 10.77.0.1 --file ipxe.efi --expect ROOT/ipxe.efi --clients 64
//        --transfers 640 [--blksize 1468] [--windowsize 8] [--port 69]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/clock.h"
#include "tftp/protocol.h"

namespace {

using namespace shoal;
using namespace shoal::tftp;

// A client gives up after this many silent timeouts (the server's own retries are 5).
constexpr int timeouts_max = 6;
constexpr std::int64_t timeout_ns = time::ns_per_s;

struct client {
    int fd = -1;
    bool locked = false;
    sockaddr_in peer{};
    std::uint16_t blksize = blksize_default;
    std::uint16_t window = 1;
    std::uint64_t expected = 1;
    std::uint16_t in_window = 0;
    std::uint64_t received = 0;
    std::int64_t deadline_ns = 0;
    int timeouts = 0;
    bool active = false;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"TFTP load generator"};
    std::string server = "10.77.0.1";
    std::string file;
    std::string expect_path;
    std::uint16_t port = 69;
    int clients_count = 16;
    int transfers_target = 160;
    int blksize = 0;
    int windowsize = 0;
    app.add_option("--server", server);
    app.add_option("--port", port);
    app.add_option("--file", file)->required();
    app.add_option("--expect", expect_path)->required();
    app.add_option("--clients", clients_count);
    app.add_option("--transfers", transfers_target);
    app.add_option("--blksize", blksize);
    app.add_option("--windowsize", windowsize);
    CLI11_PARSE(app, argc, argv);

    std::ifstream in(expect_path, std::ios::binary);
    std::vector<char> expected((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, server.c_str(), &to.sin_addr);

    request rrq;
    rrq.filename = file;
    if (blksize > 0) rrq.blksize = static_cast<std::uint16_t>(blksize);
    if (windowsize > 0) rrq.windowsize = static_cast<std::uint16_t>(windowsize);
    std::vector<std::byte> rrq_bytes(1024);
    rrq_bytes.resize(encode_request(rrq_bytes, rrq));

    int ep = ::epoll_create1(0);
    std::vector<client> clients(static_cast<std::size_t>(clients_count));
    int started = 0, done = 0, failures = 0;
    std::uint64_t bytes = 0;

    auto start = [&](std::size_t i) {
        client& c = clients[i];
        if (c.fd >= 0) {
            ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            ::close(c.fd);
        }
        c = client{};
        if (started >= transfers_target) {
            return;
        }
        ++started;
        c.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        int rcvbuf = 4 << 20;
        ::setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
        ::sendto(c.fd, rrq_bytes.data(), rrq_bytes.size(), 0, reinterpret_cast<sockaddr*>(&to),
                 sizeof to);
        c.active = true;
        c.deadline_ns = time::monotonic_ns() + timeout_ns;
    };
    auto ack = [&](client& c, std::uint16_t block) {
        std::byte a[4];
        encode_header(std::span<std::byte, 4>(a, 4), opcode::ack, block);
        ::sendto(c.fd, a, 4, 0, reinterpret_cast<sockaddr*>(&c.peer), sizeof c.peer);
    };
    auto end = [&](std::size_t i, bool ok) {
        ok ? ++done : ++failures;
        start(i);
    };

    auto t0 = time::monotonic_ns();
    for (std::size_t i = 0; i < clients.size(); ++i) {
        start(i);
    }
    std::vector<std::byte> buf(packet_size_max);
    epoll_event events[256];
    while (done + failures < transfers_target) {
        int n = ::epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n; ++k) {
            std::size_t i = events[k].data.u64;
            client& c = clients[i];
            for (int r = 0; r < 64 && c.active; ++r) {
                sockaddr_in src{};
                socklen_t len = sizeof src;
                ssize_t got = ::recvfrom(c.fd, buf.data(), buf.size(), 0,
                                         reinterpret_cast<sockaddr*>(&src), &len);
                if (got < 0) {
                    break;
                }
                if (!c.locked) {
                    c.peer = src;
                    c.locked = true;
                }
                std::span<const std::byte> p(buf.data(), static_cast<std::size_t>(got));
                auto op = packet_opcode(p);
                c.deadline_ns = time::monotonic_ns() + timeout_ns;
                c.timeouts = 0;
                if (!op || *op == opcode::error) {
                    end(i, false);
                    break;
                }
                if (*op == opcode::oack) {
                    auto reply = parse_oack(p);
                    c.blksize = reply && reply->blksize ? *reply->blksize : blksize_default;
                    c.window = reply && reply->windowsize ? *reply->windowsize : 1;
                    ack(c, 0);
                    continue;
                }
                auto block = parse_block(p, opcode::data);
                if (!block || *block != (c.expected & 0xffff)) {
                    continue;
                }
                std::size_t size = p.size() - header_size;
                std::uint64_t offset = c.received;
                if (offset + size > expected.size() ||
                    std::memcmp(expected.data() + offset, p.data() + header_size, size) != 0) {
                    std::fprintf(stderr, "tftp_load: wrong bytes at offset %llu\n",
                                 static_cast<unsigned long long>(offset));
                    end(i, false);
                    break;
                }
                c.received += size;
                bytes += size;
                ++c.expected;
                ++c.in_window;
                bool last = size < c.blksize;
                if (last || c.in_window >= c.window) {
                    ack(c, *block);
                    c.in_window = 0;
                }
                if (last) {
                    end(i, c.received == expected.size());
                    break;
                }
            }
        }
        auto now = time::monotonic_ns();
        for (std::size_t i = 0; i < clients.size(); ++i) {
            client& c = clients[i];
            if (!c.active || now < c.deadline_ns) {
                continue;
            }
            if (++c.timeouts > timeouts_max) {
                end(i, false);
                continue;
            }
            c.deadline_ns = now + timeout_ns;
            if (c.locked) {
                ack(c, static_cast<std::uint16_t>((c.expected - 1) & 0xffff));
                c.in_window = 0;
            } else {
                ::sendto(c.fd, rrq_bytes.data(), rrq_bytes.size(), 0,
                         reinterpret_cast<sockaddr*>(&to), sizeof to);
            }
        }
    }
    double seconds = static_cast<double>(time::monotonic_ns() - t0) / 1e9;
    std::printf("{\"transfers\": %d, \"failures\": %d, \"bytes\": %llu, \"seconds\": %.3f}\n", done,
                failures, static_cast<unsigned long long>(bytes), seconds);
    return failures == 0 ? 0 : 1;
}
