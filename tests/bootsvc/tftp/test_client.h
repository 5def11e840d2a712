// A small blocking TFTP client for the server's tests: it speaks the options, follows
// windows, and can drop chosen DATA packets to exercise the server's recovery. Tests also
// use real clients (tests/netns); this one reaches the corners they cannot.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tftp/protocol.h"

namespace shoal::tftp::test {

struct fetch_options {
    std::optional<std::uint16_t> blksize;
    std::optional<std::uint64_t> tsize;
    std::optional<std::uint8_t> timeout_s;
    std::optional<std::uint16_t> windowsize;
    transfer_mode mode = transfer_mode::octet;
    // Called with each DATA block number (64-bit, counting from 1) when first seen;
    // returning true drops that packet as if the network lost it (once per block).
    std::function<bool(std::uint64_t)> drop;
    // Ends the transfer with error 8 right after the OACK (OVMF's size probe).
    bool abort_after_oack = false;
    int receive_timeout_ms = 2000;
};

struct fetch_result {
    bool ok = false;
    std::vector<std::byte> data;
    std::optional<option_reply> oack;
    std::optional<error_code> error;
    std::string error_message;
    std::uint64_t duplicate_blocks = 0;
};

inline fetch_result fetch(std::uint16_t port, const std::string& name, const fetch_options& o,
                          const char* server = "127.0.0.1") {
    fetch_result out;
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{o.receive_timeout_ms / 1000, (o.receive_timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rcvbuf = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, server, &to.sin_addr);

    request r;
    r.filename = name;
    r.mode = o.mode;
    r.blksize = o.blksize;
    r.tsize = o.tsize;
    r.timeout_s = o.timeout_s;
    r.windowsize = o.windowsize;
    std::vector<std::byte> buf(packet_size_max);
    std::size_t size = encode_request(buf, r);
    ::sendto(fd, buf.data(), size, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);

    std::uint16_t blksize = blksize_default;
    std::uint16_t window = 1;
    std::uint64_t expected = 1;  // next block wanted
    std::uint16_t in_window = 0;
    std::vector<bool> dropped;
    sockaddr_in from{};
    bool locked = false;
    auto send_ack = [&](std::uint16_t block) {
        std::byte ack[4];
        encode_header(std::span<std::byte, 4>(ack, 4), opcode::ack, block);
        ::sendto(fd, ack, 4, 0, reinterpret_cast<sockaddr*>(&from), sizeof from);
    };
    for (int packets = 0; packets < 10'000'000; ++packets) {
        sockaddr_in src{};
        socklen_t len = sizeof src;
        ssize_t got =
            ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&src), &len);
        if (got < 0) {
            if (!locked) {
                break;  // the server never answered
            }
            // Timed out inside a window: ask again from the last block in order.
            send_ack(static_cast<std::uint16_t>((expected - 1) & 0xffff));
            in_window = 0;
            continue;
        }
        if (!locked) {
            from = src;
            locked = true;
        } else if (src.sin_port != from.sin_port) {
            continue;  // another transfer id
        }
        std::span<const std::byte> packet(buf.data(), static_cast<std::size_t>(got));
        auto op = packet_opcode(packet);
        if (!op) {
            break;
        }
        if (*op == opcode::error) {
            auto e = parse_error(packet);
            out.error = e ? e->code : error_code::not_defined;
            out.error_message = e ? std::string(e->message) : "";
            break;
        }
        if (*op == opcode::oack) {
            auto reply = parse_oack(packet);
            if (!reply) {
                break;
            }
            out.oack = *reply;
            if (o.abort_after_oack) {
                std::byte e[64];
                std::size_t n = encode_error(e, error_code::option_refused, "probe done");
                ::sendto(fd, e, n, 0, reinterpret_cast<sockaddr*>(&from), sizeof from);
                out.ok = true;
                break;
            }
            blksize = reply->blksize.value_or(blksize_default);
            window = reply->windowsize.value_or(1);
            send_ack(0);
            continue;
        }
        auto block = parse_block(packet, opcode::data);
        if (!block) {
            break;
        }
        std::size_t data_size = static_cast<std::size_t>(got) - header_size;
        if (*block != (expected & 0xffff)) {
            ++out.duplicate_blocks;
            continue;  // out of order: dropped, the timeout or the window end recovers
        }
        if (o.drop) {
            if (dropped.size() <= expected) {
                dropped.resize(expected + 1);
            }
            if (!dropped[expected] && o.drop(expected)) {
                dropped[expected] = true;
                continue;
            }
        }
        out.data.insert(out.data.end(), buf.begin() + header_size,
                        buf.begin() + static_cast<std::ptrdiff_t>(header_size + data_size));
        ++expected;
        ++in_window;
        bool last = data_size < blksize;
        if (last || in_window >= window) {
            send_ack(*block);
            in_window = 0;
        }
        if (last) {
            out.ok = true;
            break;
        }
    }
    ::close(fd);
    return out;
}

}  // namespace shoal::tftp::test
