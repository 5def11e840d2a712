// DHCP load generator: N made-up clients each do DISCOVER -> OFFER -> REQUEST -> ACK against
// whatever server answers on the link, with up to `window` transactions in flight, and the
// run is timed from the first DISCOVER to the last ACK. Every request asks for broadcast
// replies, so any server's answers reach this one socket. Lost packets are retransmitted
// after --timeout-ms, at most --retries times; a NAKed client starts over with a DISCOVER, as
// real ones do (dnsmasq keeps no state for offers, so two clients may be offered one address);
// a client that runs out of either is counted as failed.
// Prints one JSON object. Run inside a namespace whose eth0 has an address, as root.
//   dhcp_load --iface eth0 --clients 20000 --window 64 [--seed 1]
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "dhcp/packet.h"

namespace {

using namespace shoal::dhcp;
using clock_type = std::chrono::steady_clock;

struct client {
    std::uint8_t phase = 0;  // 0 not started, 1 DISCOVER sent, 2 REQUEST sent, 3 done, 4 failed
    std::uint8_t tries = 0;
    std::uint8_t restarts = 0;
    ipv4 offered = 0;
    ipv4 server = 0;
    clock_type::time_point started{};
    clock_type::time_point sent{};
};

std::size_t build_request(std::uint8_t* b, std::uint32_t xid, const mac_address& mac,
                          message_type type, ipv4 requested, ipv4 server) {
    std::memset(b, 0, options_offset);
    b[0] = op_request;
    b[1] = 1;
    b[2] = 6;
    b[4] = static_cast<std::uint8_t>(xid >> 24);
    b[5] = static_cast<std::uint8_t>(xid >> 16);
    b[6] = static_cast<std::uint8_t>(xid >> 8);
    b[7] = static_cast<std::uint8_t>(xid);
    b[10] = 0x80;  // broadcast replies
    std::memcpy(b + 28, mac.data(), mac.size());
    b[236] = 0x63;
    b[237] = 0x82;
    b[238] = 0x53;
    b[239] = 0x63;
    std::size_t n = options_offset;
    b[n++] = opt::message_type;
    b[n++] = 1;
    b[n++] = static_cast<std::uint8_t>(type);
    auto put_ip = [&](std::uint8_t code, ipv4 a) {
        b[n++] = code;
        b[n++] = 4;
        b[n++] = static_cast<std::uint8_t>(a >> 24);
        b[n++] = static_cast<std::uint8_t>(a >> 16);
        b[n++] = static_cast<std::uint8_t>(a >> 8);
        b[n++] = static_cast<std::uint8_t>(a);
    };
    if (requested) {
        put_ip(opt::requested_address, requested);
    }
    if (server) {
        put_ip(opt::server_id, server);
    }
    const std::uint8_t params[] = {opt::parameter_list, 4, 1, 3, 6, 51};
    std::memcpy(b + n, params, sizeof params);
    n += sizeof params;
    b[n++] = opt::end;
    std::memset(b + n, 0, reply_size_min - n);
    return reply_size_min;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"DHCP transactions per second"};
    std::string iface = "eth0";
    std::uint32_t clients = 1000, window = 64, timeout_ms = 1000, retries = 3, seed = 1;
    app.add_option("--iface", iface);
    app.add_option("--clients", clients)->check(CLI::Range(1u, 1u << 20));
    app.add_option("--window", window)->check(CLI::Range(1u, 4096u));
    app.add_option("--timeout-ms", timeout_ms);
    app.add_option("--retries", retries);
    app.add_option("--seed", seed)->check(CLI::Range(0u, 255u));
    CLI11_PARSE(app, argc, argv);

    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1, buf = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.c_str(),
                 static_cast<socklen_t>(iface.size()));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(68);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        std::perror("dhcp_load: bind port 68");
        return 1;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(67);
    to.sin_addr.s_addr = htonl(INADDR_BROADCAST);

    std::vector<client> state(clients);
    const std::uint32_t xid_base = seed << 24;
    // Scattered MACs (a bijection of i), so that a server hashing MACs to addresses sees the
    // spread a real site has rather than one long run of neighbours.
    auto mac_of = [&](std::uint32_t i) {
        std::uint32_t h = i * 0x9e3779b1u;
        h ^= h >> 16;
        return mac_address{0x02,
                           static_cast<std::uint8_t>(seed),
                           static_cast<std::uint8_t>(h >> 24),
                           static_cast<std::uint8_t>(h >> 16),
                           static_cast<std::uint8_t>(h >> 8),
                           static_cast<std::uint8_t>(h)};
    };
    std::uint8_t out[packet_size_max];
    std::uint8_t in[packet_size_max + 1];
    auto send = [&](std::uint32_t i) {
        client& c = state[i];
        std::size_t n =
            c.phase == 1 ? build_request(out, xid_base + i, mac_of(i), message_type::discover, 0, 0)
                         : build_request(out, xid_base + i, mac_of(i), message_type::request,
                                         c.offered, c.server);
        c.sent = clock_type::now();
        ::sendto(fd, out, n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    };
    // A client NAKed more often than this gives up.
    constexpr std::uint8_t restarts_max = 5;
    std::uint32_t next = 0, inflight = 0, done = 0, failed = 0, retransmits = 0, stray = 0,
                  naks = 0;
    std::vector<double> latency_ms;
    latency_ms.reserve(clients);
    message m;
    auto start = clock_type::now();
    auto last_scan = start;
    // A bound on the whole run, whatever the server does.
    auto deadline = start + std::chrono::milliseconds(
                                std::uint64_t{timeout_ms} * (retries + 2) * 2 + clients * 10ull);
    while (done + failed < clients) {
        while (inflight < window && next < clients) {
            state[next].phase = 1;
            state[next].started = clock_type::now();
            send(next++);
            inflight++;
        }
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, 5);
        for (int k = 0; k < 256; k++) {
            ssize_t n = ::recv(fd, in, sizeof in, 0);
            if (n <= 0) {
                break;
            }
            if (!decode({in, static_cast<std::size_t>(n)}, m) || m.op != op_reply) {
                continue;
            }
            std::uint32_t i = m.xid - xid_base;
            if (i >= clients || std::memcmp(m.chaddr.data(), mac_of(i).data(), 6) != 0) {
                stray++;
                continue;
            }
            client& c = state[i];
            if (c.phase == 1 && m.type == message_type::offer) {
                c.offered = m.yiaddr;
                c.server = option_ipv4(m, opt::server_id);
                c.phase = 2;
                c.tries = 0;
                send(i);
            } else if (c.phase == 2 && m.type == message_type::ack) {
                c.phase = 3;
                done++;
                inflight--;
                latency_ms.push_back(
                    std::chrono::duration<double, std::milli>(clock_type::now() - c.started)
                        .count());
            } else if (c.phase == 2 && m.type == message_type::nak) {
                // As a real client does: start over with a DISCOVER, a bounded number of times.
                naks++;
                if (++c.restarts > restarts_max) {
                    c.phase = 4;
                    failed++;
                    inflight--;
                } else {
                    c.phase = 1;
                    c.tries = 0;
                    send(i);
                }
            }
        }
        auto now = clock_type::now();
        if (now - last_scan > std::chrono::milliseconds(20)) {
            last_scan = now;
            for (std::uint32_t i = 0; i < next; i++) {
                client& c = state[i];
                if ((c.phase == 1 || c.phase == 2) &&
                    now - c.sent > std::chrono::milliseconds(timeout_ms)) {
                    if (++c.tries > retries) {
                        c.phase = 4;
                        failed++;
                        inflight--;
                    } else {
                        retransmits++;
                        send(i);
                    }
                }
            }
        }
        if (now > deadline) {
            failed += clients - done - failed;
            break;
        }
    }
    double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::sort(latency_ms.begin(), latency_ms.end());
    auto pct = [&](double q) {
        return latency_ms.empty()
                   ? 0.0
                   : latency_ms[std::min(latency_ms.size() - 1,
                                         static_cast<std::size_t>(q * latency_ms.size()))];
    };
    std::printf(
        "{\"clients\": %u, \"ok\": %u, \"failed\": %u, \"retransmits\": %u, \"naks\": %u, "
        "\"stray\": %u, "
        "\"seconds\": %.4f, \"tps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
        clients, done, failed, retransmits, naks, stray, seconds, done / seconds, pct(0.5),
        pct(0.99));
    ::close(fd);
    return failed == 0 ? 0 : 3;
}
