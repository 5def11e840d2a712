// The DHCP server: full DHCP for an isolated lab, or proxyDHCP (the default) beside a site's
// own DHCP server, answering PXE ROMs, iPXE and UEFI HTTP boot clients with the right boot
// file for their architecture.
//
// API (all that shoal boot needs):
//
//   shoal::dhcp::config cfg;                  // dhcp/config.h: mode, interfaces, pools...
//   cfg.interfaces = {"eth1"};
//   for (auto& problem : shoal::dhcp::validate(cfg)) ...   // pure checks, no system calls
//   for (auto& problem : shoal::dhcp::diagnose(cfg)) ...   // + interfaces, ports (--check)
//   auto srv = shoal::dhcp::server::create(cfg);           // binds sockets, loads leases
//   if (!srv) log srv.err().describe();                    // e.g. port 67 taken, no address
//   std::thread t([&] { auto st = (*srv)->run(); });       // blocks until stop()
//   (*srv)->stop();                                        // any thread, or a signal handler
//   t.join();
//   auto c = (*srv)->stats();                              // counters, for metrics
//
// Sockets: one UDP socket per interface for port 67 (and one for 4011 in proxy mode), each
// bound to its device (SO_BINDTODEVICE) with IP_PKTINFO, so the server hears only the
// interfaces it is told to and answers from the right address. Replies go by broadcast to
// clients without an address (OVMF needs it), to the relay (giaddr) if any, else unicast.
// Every exchange is logged at debug level; bad packets get one warn/debug line, never a crash.
// Binding port 67 needs root or CAP_NET_BIND_SERVICE (and CAP_NET_RAW for SO_BINDTODEVICE
// on older kernels).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "dhcp/config.h"

namespace shoal::dhcp {

// What the server has done since it started. Read with server::stats() from any thread.
struct stats {
    std::uint64_t received = 0;   // datagrams read from any socket
    std::uint64_t malformed = 0;  // dropped: did not parse (truncated, bad options...)
    std::uint64_t ignored = 0;    // parsed but not for us (other server chosen, not PXE...)
    std::uint64_t discovers = 0;
    std::uint64_t requests = 0;
    std::uint64_t releases = 0;
    std::uint64_t declines = 0;
    std::uint64_t informs = 0;
    std::uint64_t offers = 0;  // full-mode OFFERs sent
    std::uint64_t acks = 0;    // full-mode ACKs sent (INFORM answers included)
    std::uint64_t naks = 0;
    std::uint64_t proxy_offers = 0;    // proxyDHCP offers on port 67
    std::uint64_t proxy_acks = 0;      // boot server ACKs on port 4011
    std::uint64_t pool_exhausted = 0;  // a DISCOVER found no address to offer
    std::uint64_t send_errors = 0;
    std::uint64_t leases_active = 0;  // gauge: bound leases now
};

class server {
public:
    // Validates cfg, opens and binds the sockets on every interface, loads the lease file.
    // Fails with a message naming the interface/port/file and what to do (e.g. "port 67 on
    // eth1 is taken by another DHCP server: stop it or use proxy mode").
    static result<std::unique_ptr<server>> create(const config& cfg);

    virtual ~server() = default;

    // Serves until stop() is called, then returns ok(). Returns an error only if a socket
    // fails for good. Call from one thread at a time.
    virtual status run() = 0;

    // Makes run() return soon (within one poll). Async-signal-safe (writes an eventfd).
    virtual void stop() noexcept = 0;

    virtual struct stats stats() const noexcept = 0;

    // The address the server uses on each interface, in cfg.interfaces order (for logs and
    // URLs built by the caller).
    virtual std::vector<ipv4> interface_addresses() const = 0;
};

// validate(cfg) plus what only the system can tell: interfaces that do not exist, are down or
// have no IPv4 address, a pool outside every interface's subnet, port 67/4011 already bound
// by something else. One line per problem, saying what to do. For `shoal boot --check`.
std::vector<std::string> diagnose(const config& cfg);

}  // namespace shoal::dhcp
