// The iPXE scripts shoal serves, as FOG's boot.php does: a host with a pending task boots
// the client OS with that task on its kernel command line; any other host gets the menu
// (boot the local disk by default after a timeout, quick or full registration, deploy an
// image, join a multicast session, hardware inventory).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "http/server.h"
#include "ipxe/mac.h"
#include "ipxe/task_source.h"

namespace shoal::ipxe {

struct script_config {
    // "http://10.77.0.1" (no trailing slash); empty: from each request's Host header.
    std::string base_url;
    // Paths of the client OS on the HTTP server.
    std::string kernel_path = "/clientos/vmlinuz";
    std::string initrd_path = "/clientos/initrd.img";
    // Always on the client OS's command line, after shoal's own arguments.
    std::string kernel_args = "console=tty0 console=ttyS0,115200 quiet";
    unsigned menu_timeout_ms = 5000;
    // The menu item chosen when the timeout passes: local, quickreg, fullreg, deploy,
    // multicast or inventory.
    std::string menu_default = "local";
};

// Checks a config for what would make a broken script (bad default item, paths).
status validate(const script_config& config);

// The script for a host with a pending task (already validated).
std::string task_script(const script_config& config, std::string_view base_url,
                        const mac_address& mac, const boot_task& task);
// The menu for a host with none.
std::string menu_script(const script_config& config, std::string_view base_url,
                        const mac_address& mac);
// What /boot without a MAC answers: a script that asks again with the MAC iPXE booted from.
std::string chain_script(std::string_view base_url);

// Adds GET /boot (and /boot.ipxe) to a router: ?mac=... gives the host's script, a
// malformed MAC 400, a task source failure 500; no mac, the chain script.
void add_boot_routes(http::router& routes, std::shared_ptr<task_source> tasks,
                     script_config config);

}  // namespace shoal::ipxe
