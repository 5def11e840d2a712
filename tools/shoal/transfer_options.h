// Options shared by `shoal send` and `shoal recv`: where the group is, the session key,
// and the parsing of rates, sizes and durations as people write them ("950M", "4M", "10s").
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/result.h"
#include "io/udp_uring.h"

namespace shoal::cli {

struct transfer_options {
    std::string group = "239.77.0.1";
    std::uint16_t port = 7700;
    std::string interface_name;
    std::string key_file;
    bool insecure = false;
    bool json = false;
    int ttl = 1;

    void add_to(CLI::App& app);
    result<io::udp_config> udp_config() const;
    // The session key: the file's bytes, or empty with --insecure. Errors say what to do.
    result<std::vector<std::byte>> key() const;
};

// "950M" -> 950e6 (bits/s); "1G", "100k", plain numbers. Decimal SI multipliers.
result<std::uint64_t> parse_rate_bps(const std::string& text);
// "4M" -> 4 MiB; "256k", "1G": binary multipliers.
result<std::uint64_t> parse_size_bytes(const std::string& text);
// "10s", "500ms", "2m": to nanoseconds.
result<std::int64_t> parse_duration_ns(const std::string& text);

// "1.23 GiB", "118.2 MB/s" for people.
std::string human_bytes(double bytes);
std::string human_rate(double bytes_per_s);

}  // namespace shoal::cli
