// `shoal boot`'s configuration: one JSON file for DHCP, TFTP, HTTP and the iPXE menu, with
// defaults that make a proxyDHCP boot server beside a site's own DHCP server. Unknown keys
// are errors, so that a misspelt setting is not silently ignored.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "dhcp/config.h"
#include "http/server.h"
#include "ipxe/script.h"
#include "tftp/server.h"

namespace shoal::boot {

// Where Debian's ipxe package puts the boot files shoal hands out.
inline constexpr const char* debian_ipxe_dir = "/usr/lib/ipxe";

struct boot_config {
    dhcp::config dhcp;
    bool dhcp_enabled = true;
    tftp::server_config tftp;
    bool tftp_enabled = true;
    // Copy undionly.kpxe, ipxe.efi and snponly.efi from /usr/lib/ipxe into the TFTP root
    // when they are missing there (the root is created too).
    bool install_boot_files = true;
    http::server_config http;
    std::string http_root = "/srv/shoal/http";
    ipxe::script_config ipxe;
    std::string tasks_file = "/srv/shoal/tasks.json";
    // Answer IPv6 router solicitations on the DHCP interfaces with a router advertisement
    // that offers nothing, so that iPXE stops waiting for an IPv6 router (~13 s otherwise).
    bool answer_router_solicitations = true;
};

// The defaults: proxy mode, TFTP root /srv/shoal/tftp on port 69, HTTP on port 80.
boot_config default_boot_config();

// Applies a JSON document over `config`. Errors name the key and what is wrong.
status apply_boot_config_json(boot_config& config, std::string_view json_text);

// Refuses a JSON value that is not an object or has a key outside `allowed`, naming `where`
// and the keys it knows: shoal boot's and shoald's configs share this rule.
status only_keys(const nlohmann::json& object, std::string_view where,
                 std::initializer_list<std::string_view> allowed);

// An example file with every setting and its default, for the README and `--print-config`.
std::string boot_config_example();

}  // namespace shoal::boot
