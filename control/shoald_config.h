// shoald's configuration: one JSON file (comments allowed) with an embedded default for
// every setting, so that `shoald` with no file runs a whole server: the store, the REST API,
// the web console, /metrics and the boot services (whose section is `shoal boot`'s config,
// services/boot_config.h). Unknown keys are errors, so a misspelt setting is not ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "services/boot_config.h"

namespace shoal::control {

struct shoald_config {
    // Where the store lives: sqlite:///path/to.db, postgresql://user@host/db or a libpq
    // conninfo ("host=/run/postgresql dbname=shoal"); for PostgreSQL (libpq's
    // URI form; the password preferably in ~/.pgpass or $PGPASSWORD).
    std::string store_url = "sqlite:///var/lib/shoal/shoald.db";
    // The engine's chunk store, where images live (served to task keys and tokens at /store/, image_routes.h).
    std::string image_store_dir = "/srv/shoal/images";
    // The client OS kernel and initramfs (tools/mkclientos), served at /clientos/.
    std::string clientos_dir = "/srv/shoal/http/clientos";
    // The web console's files, served at /ui/.
    std::string web_dir;
    std::string log_level = "info";

    // The first administrator, made when the store has no user at all. With an empty
    // password one is generated and written to password_file (mode 0600).
    std::string admin_user = "admin";
    std::string admin_password;
    std::string admin_password_file = "/var/lib/shoal/admin-password";

    // API limits.
    std::size_t api_body_size_max = 1u << 20;     // larger request bodies get 413
    std::uint32_t login_token_ttl_s = 12 * 3600;  // what POST /api/v1/login hands out
    std::uint32_t list_limit_max = 1000;          // ?limit= above this is a 400

    // DHCP, TFTP, HTTP (address, port, threads) and the iPXE scripts: as `shoal boot`.
    // boot.http.root is not used by shoald (it serves named directories instead).
    boot::boot_config boot;

    // The tasks part's own settings (control/tasks parses them; shoald passes them on).
    nlohmann::json tasks = nlohmann::json::object();
};

// The embedded default. DHCP is off until boot.dhcp.interfaces names the lab interface(s)
// (a default cannot guess it); TFTP on 69, HTTP on 80.
shoald_config default_shoald_config();

// Applies a JSON document over `config`. Errors name the key and what is wrong.
status apply_shoald_config_json(shoald_config& config, std::string_view json_text);

// The config as a JSON document that apply_shoald_config_json reads back (--print-config).
nlohmann::json shoald_config_json(const shoald_config& config);

}  // namespace shoal::control
