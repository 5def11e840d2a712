// The control plane's records as plain structs (docs/control.md, "Model"), their enums with
// their names, and the checks every record passes before it is stored.
//
// Conventions: ids are assigned by the store (0 = not stored yet); times are Unix seconds
// (UTC); optional fields are std::optional. JSON documents (a host's inventory, an image's
// disks) are kept as JSON text: the store checks they parse, the API reads them.
//
// Errors that one input field causes (errc::invalid_argument, errc::conflict) have a
// context that starts with the field's name and ": ", e.g. "mac: 'zz' is not a MAC ...";
// error_field() reads it back so the API can answer {"error": ..., "field": ...}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace shoal::store {

using record_id = std::int64_t;

// ---- enums, each with to_string() and a <enum>_from_string() that names the field ----

enum class image_kind : std::uint8_t {
    single_disk_resizable,
    multi_partition_single_disk,
    multi_partition_all_disks,
    raw,
};

enum class task_kind : std::uint8_t {
    capture,
    deploy,
    multicast,
    wipe_fast,
    wipe_normal,
    wipe_full,
    disk_test,
    inventory,
    wol,
    debug,
};

// queued -> active (the PC booted and took it) -> in_progress -> complete | failed |
// cancelled. Only forward moves; the last three are final.
enum class task_state : std::uint8_t { queued, active, in_progress, complete, failed, cancelled };

// waiting -> running -> complete | failed | cancelled.
enum class session_state : std::uint8_t { waiting, running, complete, failed, cancelled };

enum class schedule_kind : std::uint8_t { once, cron };

// "operator" is a C++ keyword: the enumerator has a trailing underscore, its name has not.
enum class user_role : std::uint8_t { admin, operator_, viewer };

// What the PC does when its task ends.
enum class shutdown_action : std::uint8_t { none, reboot, poweroff };

std::string_view to_string(image_kind v) noexcept;
std::string_view to_string(task_kind v) noexcept;
std::string_view to_string(task_state v) noexcept;
std::string_view to_string(session_state v) noexcept;
std::string_view to_string(schedule_kind v) noexcept;
std::string_view to_string(user_role v) noexcept;
std::string_view to_string(shutdown_action v) noexcept;

// Each refuses an unknown name with errc::invalid_argument "<field>: ... (one of a, b, c)".
result<image_kind> image_kind_from_string(std::string_view text, std::string_view field = "kind");
result<task_kind> task_kind_from_string(std::string_view text, std::string_view field = "kind");
result<task_state> task_state_from_string(std::string_view text, std::string_view field = "state");
result<session_state> session_state_from_string(std::string_view text,
                                                std::string_view field = "state");
result<schedule_kind> schedule_kind_from_string(std::string_view text,
                                                std::string_view field = "kind");
result<user_role> user_role_from_string(std::string_view text, std::string_view field = "role");
result<shutdown_action> shutdown_action_from_string(std::string_view text,
                                                    std::string_view field = "shutdown");

// complete, failed or cancelled.
bool is_final(task_state s) noexcept;
bool is_final(session_state s) noexcept;
// Whether a task may move from one state to the other (forward only, never out of a final
// state, never to itself).
bool task_transition_allowed(task_state from, task_state to) noexcept;
bool session_transition_allowed(session_state from, session_state to) noexcept;
// capture, deploy and multicast name an image.
bool task_needs_image(task_kind k) noexcept;

// ---- records ----

struct host {
    record_id id = 0;
    std::string mac;  // normalized by the store: 00:12:3f:c4:57:0c
    std::string name;
    std::string description;
    std::optional<record_id> image_id;  // the assigned image
    std::vector<record_id> groups;      // sorted by the store
    std::string inventory = "{}";       // JSON object: cpu, memory_bytes, disks[], nics[], dmi{}
    std::optional<std::int64_t> last_seen_at;
    bool pending = false;  // registered by the PC itself, not yet approved
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

// "group" in the API and the docs; host_group here so that session::group can be a name.
struct host_group {
    record_id id = 0;
    std::string name;
    std::string description;
    std::vector<record_id> hosts;  // sorted by the store
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

struct image {
    record_id id = 0;
    std::string name;  // the image's name in the engine's chunk store
    image_kind kind = image_kind::single_disk_resizable;
    std::string description;
    std::int64_t size_bytes = 0;
    std::string disks = "[]";              // JSON array, one entry per disk
    std::vector<record_id> storage_nodes;  // nodes holding it, sorted by the store
    bool is_protected = false;             // "protected": not captured over, not deleted
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

struct storage_node {
    record_id id = 0;
    std::string name;
    std::string url;   // HTTP base for chunks: http:// or https://
    std::string path;  // the store directory on that node, absolute
    std::optional<record_id> storage_group_id;
    bool master = false;
    bool enabled = true;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

struct storage_group {
    record_id id = 0;
    std::string name;
    std::string description;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

struct task_progress {
    double percent = 0;  // 0..100
    std::int64_t bytes_done = 0;
    std::int64_t bytes_total = 0;
    std::int64_t rate_Bps = 0;  // bytes per second
    std::string message;
};

struct task {
    record_id id = 0;
    task_kind kind = task_kind::deploy;
    record_id host_id = 0;
    std::optional<record_id> image_id;  // capture, deploy, multicast
    task_state state = task_state::queued;
    task_progress progress;
    std::optional<record_id> session_id;  // multicast
    shutdown_action shutdown = shutdown_action::reboot;
    bool wol = false;                         // wake the host when the task is scheduled
    std::string disk;  // the agent's disk rule (docs/agent.md); "" = auto
    std::optional<record_id> created_by;      // user id
    std::optional<std::int64_t> started_at;   // first move to active or in_progress
    std::optional<std::int64_t> finished_at;  // move to a final state
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

// One state change of a task: its history. from is empty for the creation (-> queued).
struct task_event {
    record_id id = 0;
    record_id task_id = 0;
    std::int64_t at = 0;
    std::optional<task_state> from;
    task_state to = task_state::queued;
    std::string message;
};

struct session {
    record_id id = 0;
    record_id image_id = 0;
    session_state state = session_state::waiting;
    std::string group;  // multicast address, IPv4 224.0.0.0/4 or IPv6 ff00::/8
    std::uint16_t port = 0;
    std::int32_t receivers_min = 1;  // start when this many hosts joined ...
    std::int32_t wait_max_s = 600;   // ... or after this long
    std::int64_t rate_bps = 0;       // 0: no limit
    std::vector<record_id> tasks;    // sorted by the store
    std::optional<std::int64_t> started_at;
    std::optional<std::int64_t> finished_at;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

// The task a schedule makes for each of its hosts.
struct task_template {
    task_kind kind = task_kind::deploy;
    std::optional<record_id> image_id;
    shutdown_action shutdown = shutdown_action::reboot;
    bool wol = false;
};

struct schedule {
    record_id id = 0;
    std::string name;
    schedule_kind kind = schedule_kind::once;
    std::optional<std::int64_t> at;  // once
    std::string cron;                // cron: "minute hour day-of-month month day-of-week"
    task_template task;
    std::vector<record_id> hosts;   // sorted by the store
    std::vector<record_id> groups;  // sorted by the store
    bool enabled = true;
    std::optional<std::int64_t> next_run_at;
    std::optional<std::int64_t> last_run_at;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

// The password is never part of a record: it goes in (create_user, set_password) and is
// kept only as an Argon2id hash.
struct user {
    record_id id = 0;
    std::string name;
    user_role role = user_role::viewer;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

// The secret is shown once, when the token is made (repository::create_token); the store
// keeps only its SHA-256.
struct token {
    record_id id = 0;
    std::string name;
    record_id user_id = 0;
    std::optional<std::int64_t> expires_at;
    std::optional<std::int64_t> last_used_at;
    std::int64_t created_at = 0;
};

// ---- validation ----

// The field an invalid_argument or conflict error names ("" if none): the context up to
// the first ": " when that is an identifier.
std::string_view error_field(const error& e) noexcept;

// A MAC in any form bootsvc's ipxe::parse_mac takes (00:12:3F:C4:57:0C, 00-12-..., or 12
// hex digits), as 00:12:3f:c4:57:0c. Errors name field.
result<std::string> normalize_mac(std::string_view text, std::string_view field = "mac");

// Host, group, user and storage names: FOG's rule for host names, [A-Za-z0-9._-]{1,63}.
status validate_name(std::string_view name, std::string_view field = "name");

// Each checks one record as a caller hands it to the store (ids of other records are
// checked by the store itself). validate(host&) also normalizes the MAC in place.
status validate(host& h);
status validate(const host_group& g);
status validate(const image& i);
status validate(const storage_node& n);
status validate(const storage_group& g);
status validate(const task& t);
status validate(const task_progress& p);
status validate(const session& s);
status validate(const schedule& s);
status validate(const user& u);
status validate_password(std::string_view password);  // 8 to 1024 bytes
status validate_token_name(std::string_view name);

// Five crontab(5) fields: numbers, '*', ranges, lists and steps within each field's range.
// Names (jan, mon) and @-shortcuts are not taken.
status validate_cron(std::string_view cron, std::string_view field = "cron");

}  // namespace shoal::store
