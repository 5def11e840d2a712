// How the parts of shoald plug into the daemon. shoald opens the store, then calls
// make_services() (control/tasks/shoald_services.cpp implements it), adds the API and boot
// routes, starts every background service, serves, and on SIGTERM stops the services in
// reverse order before the store closes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "http/server.h"
#include "ipxe/mac.h"
#include "ipxe/task_source.h"

namespace shoal::store {
class repository;
}

namespace shoal::control {

struct shoald_config;

// What the REST API asks of the tasks part. Called from HTTP threads, several at once.
class task_control {
public:
    virtual ~task_control() = default;
    // A task was created, cancelled or changed through the API (already in the store): act
    // on it now rather than at the next look at the store.
    virtual void task_changed(std::int64_t /*task_id*/) noexcept {}
    // POST /api/v1/hosts/{id}/wake: send the Wake-on-LAN magic packet now. An error's
    // context reaches the API client (as a 502 or, for errc::unsupported, a 501).
    virtual status wake(std::int64_t host_id, const ipxe::mac_address& mac) = 0;
    // Extra Prometheus text for /metrics (session bytes and rates), appended as is: whole
    // lines with # HELP / # TYPE, names starting shoal_.
    virtual void write_metrics(std::string& /*out*/) const {}
};

// Something that runs beside the HTTP server (the scheduler, the session runner...).
class service {
public:
    virtual ~service() = default;
    virtual std::string_view name() const noexcept = 0;
    // Starts its threads; an error stops shoald from starting (and is shown to the operator).
    virtual status start() = 0;
    // Stops and joins; called once, in reverse start order, before the store closes.
    virtual void stop() noexcept = 0;
};

// What a part is given to build its services from.
struct daemon_context {
    const shoald_config* config = nullptr;
    std::shared_ptr<store::repository> repo;  // open, migrated
};

struct services {
    // The task waiting for each MAC, for GET /boot's iPXE script; null: every host gets
    // the menu.
    std::shared_ptr<ipxe::task_source> boot_tasks;
    // Never null after make_services (the default logs and answers "unsupported").
    std::shared_ptr<task_control> tasks;
    std::vector<std::unique_ptr<service>> background;
    // Adds the part's own routes (e.g. more client-OS endpoints) before serving; may be
    // empty. Routes it adds are served without an API token: check what you serve.
    std::function<void(http::router&)> add_routes;
};

// Builds the tasks part's services over the store (control/tasks/shoald_services.cpp).
result<services> make_services(const daemon_context& ctx);

}  // namespace shoal::control
