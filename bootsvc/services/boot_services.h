// The boot services one process runs together: DHCP (proxy or full), TFTP and the IPv6
// router-advertisement answer, each on its own thread, from one boot_config. `shoal boot`
// and shoald both run them through this class, so that they start, report and stop alike.
#pragma once

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "dhcp/server.h"
#include "http/server.h"
#include "ndp/ra_responder.h"
#include "services/boot_config.h"
#include "tftp/server.h"

namespace shoal::boot {

// Copies the missing iPXE binaries from Debian's package into the TFTP root (atomically:
// a partial copy is never served). Creates the root.
status install_boot_files(const boot_config& c);

class boot_services {
public:
    // Installs the boot files when asked, binds DHCP and TFTP (a taken port fails here,
    // naming it) and starts their threads. The HTTP server is the caller's: see add_routes.
    static result<std::unique_ptr<boot_services>> start(const boot_config& c);
    ~boot_services();  // stops
    boot_services(const boot_services&) = delete;
    boot_services& operator=(const boot_services&) = delete;

    // Stops every service and joins its thread; safe to call twice.
    void stop() noexcept;

    // GET /tftp/<file>: the TFTP root over HTTP too (UEFI HTTP boot fetches iPXE there).
    void add_routes(http::router& routes) const;

    // Counters, readable from any thread; nullopt for a service that is not enabled.
    std::optional<dhcp::stats> dhcp_stats() const noexcept;
    std::optional<tftp::server_stats> tftp_stats() const noexcept;
    // Both as one JSON object {"dhcp": {...}, "tftp": {...}} (GET /status).
    nlohmann::json stats_json() const;

    // One line for the log: what runs where.
    std::string describe() const;

private:
    explicit boot_services(const boot_config& c) : _config(c) {}

    boot_config _config;
    std::unique_ptr<dhcp::server> _dhcp;
    std::unique_ptr<tftp::server> _tftp;
    std::unique_ptr<ndp::ra_responder> _ra;
    std::vector<std::thread> _threads;
};

}  // namespace shoal::boot
