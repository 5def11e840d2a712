// The control plane's one way to its database: an abstract repository with an SQLite
// (embedded, the default) and a PostgreSQL implementation (docs/control.md, "Store").
//
// Every call is safe from several threads at once. Errors:
//   not_found         no record with that id (or MAC, name)
//   conflict          a duplicate (MAC, name), a host's second open task, a state change
//                     that is not allowed, a record still in use; names the field
//   invalid_argument  a field fails validation or names a record that does not exist;
//                     names the field (error_field())
//   denied            a wrong password, an unknown, wrong or expired token
//   unavailable       the database cannot be reached (PostgreSQL down); try again later
//   version           the database's schema is newer than this build (open_repository)
//   io                anything else the database reported
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "store/model.h"

namespace shoal::store {

// One page of a list, ordered by id.
struct page {
    static constexpr std::int64_t limit_max = 1000;
    std::int64_t limit = 100;  // 1..limit_max
    std::int64_t offset = 0;
};

struct host_filter {
    std::optional<record_id> group_id;  // members of this group
    std::optional<record_id> image_id;  // hosts assigned this image
    std::optional<bool> pending;
};

struct task_filter {
    std::optional<task_state> state;
    std::optional<task_kind> kind;
    std::optional<record_id> host_id;
    std::optional<record_id> session_id;
    bool open_only = false;  // queued, active or in_progress
};

struct session_filter {
    std::optional<session_state> state;
    std::optional<record_id> image_id;
};

// What create_token returns: the record and its secret (64 hex digits), which exists only
// here: the store keeps its SHA-256.
struct new_token {
    token record;
    std::string secret;
};

// Who a token belongs to.
struct token_identity {
    token record;
    user owner;
};

class repository {
public:
    virtual ~repository() = default;

    // "sqlite" or "postgresql".
    virtual std::string_view backend() const noexcept = 0;
    // The schema version the database is at (the highest migration applied).
    virtual result<int> schema_version() = 0;

    // ---- hosts (MAC normalized on the way in; groups written with the host) ----
    virtual result<host> create_host(host h) = 0;
    virtual result<host> get_host(record_id id) = 0;
    virtual result<host> get_host_by_mac(std::string_view mac) = 0;  // any form parse_mac takes
    virtual result<host> get_host_by_name(std::string_view name) = 0;
    virtual result<std::vector<host>> list_hosts(const host_filter& filter, page p) = 0;
    virtual result<std::int64_t> count_hosts(const host_filter& filter) = 0;
    // Replaces every field but id and created_at.
    virtual result<host> update_host(host h) = 0;
    // Sets last_seen_at, and the inventory when given (a PC registering again).
    virtual result<host> touch_host(record_id id, std::int64_t seen_at,
                                    std::optional<std::string> inventory) = 0;
    virtual status delete_host(record_id id) = 0;
    // All or nothing, in one transaction: every host is validated first (the error names
    // the index, "hosts[3].mac: ..."), and a duplicate within the batch or against the store
    // stores none of them. Returns how many were stored.
    virtual result<std::size_t> import_hosts(std::vector<host> hosts) = 0;

    // ---- groups (hosts written with the group) ----
    virtual result<host_group> create_group(host_group g) = 0;
    virtual result<host_group> get_group(record_id id) = 0;
    virtual result<std::vector<host_group>> list_groups(page p) = 0;
    virtual result<host_group> update_group(host_group g) = 0;
    virtual status delete_group(record_id id) = 0;

    // ---- images (storage_nodes written with the image); protected ones are not deleted ----
    virtual result<image> create_image(image i) = 0;
    virtual result<image> get_image(record_id id) = 0;
    virtual result<image> get_image_by_name(std::string_view name) = 0;
    virtual result<std::vector<image>> list_images(page p) = 0;
    virtual result<image> update_image(image i) = 0;
    virtual status delete_image(record_id id) = 0;

    // ---- storage nodes and groups ----
    virtual result<storage_node> create_storage_node(storage_node n) = 0;
    virtual result<storage_node> get_storage_node(record_id id) = 0;
    virtual result<std::vector<storage_node>> list_storage_nodes(page p) = 0;
    virtual result<storage_node> update_storage_node(storage_node n) = 0;
    virtual status delete_storage_node(record_id id) = 0;

    virtual result<storage_group> create_storage_group(storage_group g) = 0;
    virtual result<storage_group> get_storage_group(record_id id) = 0;
    virtual result<std::vector<storage_group>> list_storage_groups(page p) = 0;
    virtual result<storage_group> update_storage_group(storage_group g) = 0;
    virtual status delete_storage_group(record_id id) = 0;

    // ---- tasks ----
    // Stores a queued task (state, progress and times given are ignored) and its first
    // event. A host with a task not yet final gets errc::conflict naming host_id.
    virtual result<task> create_task(task t, std::string_view message = "created") = 0;
    virtual result<task> get_task(record_id id) = 0;
    virtual result<std::vector<task>> list_tasks(const task_filter& filter, page p) = 0;
    virtual result<std::int64_t> count_tasks(const task_filter& filter) = 0;
    // The host's task that is not final, if any.
    virtual result<std::optional<task>> open_task_for_host(record_id host_id) = 0;
    // Moves the task to a new state and appends the event, in one transaction; sets
    // started_at / finished_at. A move task_transition_allowed() refuses is a conflict.
    virtual result<task> transition_task(record_id id, task_state to,
                                         std::string_view message = {}) = 0;
    // Progress of a task that is not final (a final one is a conflict).
    virtual result<task> update_task_progress(record_id id, const task_progress& p) = 0;
    // Progress of many tasks in one transaction (a session's per-receiver report each
    // second). Tasks that are gone or final are skipped; returns how many were written.
    virtual result<std::size_t> update_task_progress_batch(
        const std::vector<std::pair<record_id, task_progress>>& updates) = 0;
    virtual result<std::vector<task_event>> task_events(record_id task_id) = 0;
    virtual status delete_task(record_id id) = 0;
    // A fresh per-task secret (64 hex digits) for the PC's command line; replaces the one
    // before. The store keeps its SHA-256.
    virtual result<std::string> issue_task_key(record_id task_id) = 0;
    // The task a secret belongs to; errc::denied for an unknown secret.
    virtual result<task> get_task_by_key(std::string_view secret) = 0;

    // ---- multicast sessions ----
    virtual result<session> create_session(session s) = 0;  // state waiting, tasks ignored
    virtual result<session> get_session(record_id id) = 0;
    virtual result<std::vector<session>> list_sessions(const session_filter& filter, page p) = 0;
    // Ties tasks to the session (sets their session_id); unknown tasks are invalid_argument.
    virtual result<session> attach_session_tasks(record_id id,
                                                 const std::vector<record_id>& task_ids) = 0;
    // Sets started_at on running and finished_at on a final state.
    virtual result<session> set_session_state(record_id id, session_state to) = 0;
    virtual status delete_session(record_id id) = 0;

    // ---- schedules ----
    virtual result<schedule> create_schedule(schedule s) = 0;
    virtual result<schedule> get_schedule(record_id id) = 0;
    virtual result<std::vector<schedule>> list_schedules(page p) = 0;
    // Enabled schedules whose next_run_at is at or before the time, oldest first.
    virtual result<std::vector<schedule>> schedules_due(std::int64_t before_or_at,
                                                        std::size_t count_max) = 0;
    virtual result<schedule> update_schedule(schedule s) = 0;
    // Records a run: last_run_at, and the next one (nullopt: none, e.g. a one-shot).
    virtual result<schedule> mark_schedule_run(record_id id, std::int64_t ran_at,
                                               std::optional<std::int64_t> next_run_at) = 0;
    virtual status delete_schedule(record_id id) = 0;

    // ---- users and tokens ----
    virtual result<user> create_user(user u, std::string_view password) = 0;
    virtual result<user> get_user(record_id id) = 0;
    virtual result<user> get_user_by_name(std::string_view name) = 0;
    virtual result<std::vector<user>> list_users(page p) = 0;
    virtual result<user> update_user(user u) = 0;  // name and role
    virtual status set_password(record_id id, std::string_view password) = 0;
    virtual status delete_user(record_id id) = 0;  // and their tokens
    // The user when the password is right; errc::denied when the user is unknown or the
    // password wrong (the same answer for both).
    virtual result<user> verify_password(std::string_view name, std::string_view password) = 0;

    virtual result<new_token> create_token(record_id user_id, std::string_view name,
                                           std::optional<std::int64_t> expires_at) = 0;
    // The token and its user; sets last_used_at. errc::denied if the secret is unknown or
    // the token expired.
    virtual result<token_identity> lookup_token(std::string_view secret) = 0;
    virtual result<std::vector<token>> list_tokens(std::optional<record_id> user_id, page p) = 0;
    virtual status delete_token(record_id id) = 0;
};

struct open_options {
    // Argon2id's cost: INTERACTIVE (libsodium's limits for logins) unless cheap, which uses
    // libsodium's minimum (still Argon2id) so that tests do not spend seconds on hashes.
    bool cheap_password_hash = false;
    // How long an SQLite call waits for a lock another process holds.
    int busy_timeout_ms = 5000;
    // How long a PostgreSQL connection attempt may take.
    int connect_timeout_s = 5;
};

// Opens (creating an SQLite file if needed) and migrates a database:
//   sqlite:///var/lib/shoal/shoal.db, sqlite::memory:, or a bare path   -> SQLite
//   postgresql://user@host/db, postgres://..., or a libpq conninfo        -> PostgreSQL
//     ("host=/run/postgresql dbname=shoal", anything with '=')
// Migrations not yet applied are applied in one transaction; a database whose schema is
// newer than this build is refused (errc::version).
result<std::unique_ptr<repository>> open_repository(std::string_view url,
                                                    const open_options& options = {});

// The highest migration this build carries.
int schema_version_latest() noexcept;

}  // namespace shoal::store
