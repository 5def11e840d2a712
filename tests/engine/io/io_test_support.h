// Test helpers shared by the io tests: numbered packets whose every byte can be checked,
// a free UDP port, and send/receive loops with deadlines.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "io/packet_io.h"

namespace shoal::io::test {

// Smallest test packet: a 4-byte sequence number and a 4-byte size, then a pattern.
inline constexpr std::uint32_t packet_header_size = 8;

inline std::byte pattern_byte(std::uint32_t seq, std::uint32_t offset) noexcept {
    return static_cast<std::byte>((seq * 131u + offset * 7u + (seq >> 8)) & 0xffu);
}

// Writes packet `seq` of `size` bytes (size >= packet_header_size) into p.
inline void fill_packet(packet& p, std::uint32_t seq, std::uint32_t size) noexcept {
    std::memcpy(p.data, &seq, 4);
    std::memcpy(p.data + 4, &size, 4);
    for (std::uint32_t i = packet_header_size; i < size; ++i) {
        p.data[i] = pattern_byte(seq, i);
    }
    p.size = size;
}

// Returns the sequence number if every byte of p is what fill_packet wrote, else -1.
inline std::int64_t check_packet(const packet& p) noexcept {
    if (p.size < packet_header_size) {
        return -1;
    }
    std::uint32_t seq = 0;
    std::uint32_t size = 0;
    std::memcpy(&seq, p.data, 4);
    std::memcpy(&size, p.data + 4, 4);
    if (size != p.size) {
        return -1;
    }
    for (std::uint32_t i = packet_header_size; i < size; ++i) {
        if (p.data[i] != pattern_byte(seq, i)) {
            return -1;
        }
    }
    return seq;
}

// A UDP port nobody on this host is bound to right now (the kernel picks it).
inline std::uint16_t free_udp_port() {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t length = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

inline in_addr ipv4(const char* text) {
    in_addr a{};
    inet_pton(AF_INET, text, &a);
    return a;
}

// Sends packets numbered first_seq.. with the given sizes; returns how many were accepted
// before `timeout_ns` or an error (the rest are given back).
inline std::size_t send_numbered(packet_io& io, const std::vector<std::uint32_t>& sizes,
                                 std::uint32_t first_seq, std::int64_t timeout_ns,
                                 std::string* failure) {
    constexpr std::size_t burst_max = 256;
    packet burst[burst_max];
    const time::deadline give_up = time::deadline::after_ns(timeout_ns);
    std::size_t sent = 0;
    while (sent < sizes.size() && !give_up.expired()) {
        const std::size_t want = std::min(burst_max, sizes.size() - sent);
        const std::size_t got = io.alloc_burst(burst, want);
        for (std::size_t i = 0; i < got; ++i) {
            fill_packet(burst[i], first_seq + static_cast<std::uint32_t>(sent + i),
                        sizes[sent + i]);
        }
        std::size_t done = 0;
        while (done < got && !give_up.expired()) {
            auto r = io.send_burst(burst + done, got - done);
            if (!r) {
                if (failure != nullptr) {
                    *failure = r.err().describe();
                }
                io.release_burst(burst + done, got - done);
                return sent + done;
            }
            done += *r;
        }
        if (done < got) {
            io.release_burst(burst + done, got - done);
        }
        sent += done;
    }
    return sent;
}

struct receive_tally {
    std::size_t received = 0;
    std::size_t bad = 0;        // bytes not what was sent
    std::size_t duplicate = 0;  // a sequence number seen twice
    std::size_t foreign = 0;    // a sequence number outside the expected range
    std::string failure;
};

// Receives until `expected` packets numbered [first_seq, first_seq + expected) arrived or
// the deadline passes; checks every byte and gives every buffer back.
inline receive_tally receive_numbered(packet_io& io, std::size_t expected, std::uint32_t first_seq,
                                      std::int64_t timeout_ns) {
    receive_tally tally;
    std::vector<bool> seen(expected, false);
    constexpr std::size_t burst_max = 64;
    packet burst[burst_max];
    const time::deadline give_up = time::deadline::after_ns(timeout_ns);
    while (tally.received < expected) {
        const std::int64_t left_ns = give_up.remaining_ns(time::monotonic_ns());
        if (left_ns == 0) {
            break;
        }
        auto r =
            io.recv_burst(burst, burst_max, std::min<std::int64_t>(left_ns, 50 * time::ns_per_ms));
        if (!r) {
            tally.failure = r.err().describe();
            break;
        }
        for (std::size_t i = 0; i < *r; ++i) {
            const std::int64_t seq = check_packet(burst[i]);
            if (seq < 0) {
                ++tally.bad;
            } else if (seq < first_seq || seq >= first_seq + static_cast<std::int64_t>(expected)) {
                ++tally.foreign;
            } else if (seen[static_cast<std::size_t>(seq - first_seq)]) {
                ++tally.duplicate;
            } else {
                seen[static_cast<std::size_t>(seq - first_seq)] = true;
                ++tally.received;
            }
        }
        io.release_burst(burst, *r);
    }
    return tally;
}

}  // namespace shoal::io::test
