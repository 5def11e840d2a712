// A read-only TFTP server confined to one directory: RFC 1350 with the blksize, tsize,
// timeout and windowsize options. One thread runs one epoll loop over the request socket
// and one connected socket per transfer; each transfer has its own retransmission timer,
// so a slow or vanished client never delays the others. A file read by many transfers at
// once is open once (file_cache.h). Memory per transfer is bounded by window_bytes_max.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace shoal::tftp {

struct server_config {
    std::string root_dir;                       // files are served from beneath it only
    std::string address = "0.0.0.0";            // IPv4 address to listen on
    std::uint16_t port = 69;                    // 0: any free port (tests)
    std::uint32_t transfers_max = 1024;         // more at once are refused with "server busy"
    std::uint16_t blksize_max = 65464;          // the largest block a client may ask for
    std::uint16_t windowsize_max = 64;          // the most blocks in flight per transfer
    std::uint32_t window_bytes_max = 1u << 20;  // blksize * windowsize is cut to this
    std::uint32_t timeout_ms = 1000;    // retransmission interval unless the client names one
    std::uint32_t retries_max = 5;      // unanswered retransmissions before giving up
    std::uint32_t idle_files_max = 64;  // files kept open with no transfer reading them
};

// Counters, readable from any thread while the server runs.
struct server_stats {
    std::uint64_t requests = 0;
    std::uint64_t refused = 0;        // answered with an error: bad name, no file, busy, WRQ
    std::uint64_t completed = 0;      // every block acknowledged
    std::uint64_t failed = 0;         // the client stopped answering or sent an error
    std::uint64_t option_probes = 0;  // ended by the client after the OACK (OVMF's tsize probe)
    std::uint64_t retransmitted_packets = 0;
    std::uint64_t bytes_sent = 0;  // file bytes in DATA packets, retransmissions included
    std::uint64_t file_cache_hits = 0;
    std::uint64_t file_cache_misses = 0;
    std::uint64_t active = 0;
};

class server {
public:
    // Opens the root and binds the request socket (so a taken port fails here, not in run).
    static result<std::unique_ptr<server>> create(const server_config& config);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Serves until stop(); returns an error only if the loop itself fails.
    status run();
    // Makes run() return soon; safe from any thread and from signal handlers.
    void stop() noexcept;

    std::uint16_t port() const noexcept;
    server_stats stats() const noexcept;

    class impl;

private:
    explicit server(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> _impl;
};

}  // namespace shoal::tftp
