// A minimal HTTP/1.0 client for tests: one request, the whole answer. Real clients (curl)
// are exercised in tests/netns; this one can send what curl would clean up first.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace shoal::http::test {

struct reply {
    int status = 0;
    std::string headers;
    std::string body;
};

// Sends `raw` (a whole request) to 127.0.0.1:port and reads until the server closes.
inline reply roundtrip(std::uint16_t port, const std::string& raw) {
    reply out;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        ::close(fd);
        return out;
    }
    std::size_t sent = 0;
    while (sent < raw.size()) {
        ssize_t n = ::send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            break;
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string all;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            break;
        }
        all.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    auto end = all.find("\r\n\r\n");
    if (all.size() < 12 || end == std::string::npos) {
        return out;
    }
    out.status = std::stoi(all.substr(9, 3));
    out.headers = all.substr(0, end);
    out.body = all.substr(end + 4);
    return out;
}

inline reply get(std::uint16_t port, const std::string& target) {
    return roundtrip(port, "GET " + target +
                               " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n");
}

}  // namespace shoal::http::test
