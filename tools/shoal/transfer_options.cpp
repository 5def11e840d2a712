#include "transfer_options.h"

#include <arpa/inet.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

namespace shoal::cli {

void transfer_options::add_to(CLI::App& app) {
    app.add_option("--group", group, "multicast group (IPv4)")->capture_default_str();
    app.add_option("--port", port, "UDP port")->capture_default_str();
    app.add_option("--interface,-i", interface_name, "network interface (default: by route)");
    app.add_option("--key-file", key_file,
                   "file holding the session key; the same on the sender and every receiver");
    app.add_flag("--insecure", insecure, "run without a session key: anyone on the LAN can steer the session");
    app.add_option("--ttl", ttl, "multicast TTL (1 keeps the stream in the lab's subnet)")->capture_default_str();
    app.add_flag("--json", json, "print the summary as JSON on stdout");
}

result<io::udp_config> transfer_options::udp_config() const {
    io::udp_config c;
    if (inet_pton(AF_INET, group.c_str(), &c.group) != 1) {
        return error::format(errc::invalid_argument, 0, "--group {}: not an IPv4 address", group);
    }
    if (!IN_MULTICAST(ntohl(c.group.s_addr))) {
        return error::format(errc::invalid_argument, 0,
                             "--group {}: not a multicast address (use 224.0.0.0/4, e.g. 239.77.0.1)",
                             group);
    }
    if (port == 0) {
        return error(errc::invalid_argument, "--port 0: choose a port");
    }
    c.port = port;
    c.interface_name = interface_name;
    c.ttl = ttl;
    c.loopback = true;
    return c;
}

result<std::vector<std::byte>> transfer_options::key() const {
    if (key_file.empty()) {
        if (insecure) {
            return std::vector<std::byte>{};
        }
        return error(errc::invalid_argument,
                     "no session key: pass --key-file FILE (the same file on the sender and every "
                     "receiver; e.g. head -c 32 /dev/urandom > lab.key), or --insecure");
    }
    std::ifstream in(key_file, std::ios::binary);
    if (!in) {
        return error::format(errc::not_found, errno, "--key-file {}: cannot read it", key_file);
    }
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.size() < 16) {
        return error::format(errc::invalid_argument, 0,
                             "--key-file {}: {} bytes is too short for a key (at least 16)",
                             key_file, bytes.size());
    }
    std::vector<std::byte> key(bytes.size());
    std::memcpy(key.data(), bytes.data(), bytes.size());
    return key;
}

namespace {
result<double> parse_scaled(const std::string& text, const char* what,
                            std::initializer_list<std::pair<std::string_view, double>> units) {
    double value = 0;
    const char* begin = text.data();
    const char* end = begin + text.size();
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || value < 0 || !std::isfinite(value)) {
        return error::format(errc::invalid_argument, 0, "'{}' is not a {}", text, what);
    }
    const std::string_view suffix(ptr, static_cast<std::size_t>(end - ptr));
    for (const auto& [name, scale] : units) {
        if (suffix == name) {
            return value * scale;
        }
    }
    return error::format(errc::invalid_argument, 0, "'{}': unknown unit '{}' for a {}", text,
                         suffix, what);
}
}  // namespace

result<std::uint64_t> parse_rate_bps(const std::string& text) {
    auto v = parse_scaled(text, "rate (e.g. 950M for 950 Mbit/s)",
                          {{"", 1}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}});
    if (!v) {
        return v.err();
    }
    if (*v < 1e5) {
        return error::format(errc::invalid_argument, 0, "rate {} is below 100k bit/s", text);
    }
    return static_cast<std::uint64_t>(*v);
}

result<std::uint64_t> parse_size_bytes(const std::string& text) {
    auto v = parse_scaled(text, "size (e.g. 4M)",
                          {{"", 1}, {"k", 1024.0}, {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}});
    if (!v) {
        return v.err();
    }
    return static_cast<std::uint64_t>(*v);
}

result<std::int64_t> parse_duration_ns(const std::string& text) {
    auto v = parse_scaled(text, "duration (e.g. 10s)",
                          {{"ms", 1e6}, {"s", 1e9}, {"", 1e9}, {"m", 60e9}, {"h", 3600e9}});
    if (!v) {
        return v.err();
    }
    return static_cast<std::int64_t>(*v);
}

std::string human_bytes(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        ++u;
    }
    return fmt::format("{:.{}f} {}", bytes, u == 0 ? 0 : 1, units[u]);
}

std::string human_rate(double bytes_per_s) { return fmt::format("{:.1f} MB/s", bytes_per_s / 1e6); }

}  // namespace shoal::cli
