// The repository over an sql_connection: the same SQL for SQLite and PostgreSQL, every
// value a bound parameter. One mutex serializes calls on the one connection; the slow
// parts that need no database (Argon2id) run outside it.
//
// References and unique names are checked in the transaction before writing, so errors
// name the field; the database's constraints stay as the backstop against other processes.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "store/migrations.h"
#include "store/repository.h"
#include "store/secrets.h"
#include "store/sql.h"

namespace shoal::store {

namespace {

using rows_t = std::vector<sql_row>;
using params_t = std::vector<sql_value>;

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ---- parameters ----
sql_value p(std::int64_t v) { return v; }
sql_value p(bool v) { return std::int64_t{v ? 1 : 0}; }
sql_value p(double v) { return v; }
sql_value p(std::string_view v) { return std::string(v); }
sql_value p(const std::string& v) { return v; }
sql_value p(const std::optional<std::int64_t>& v) {
    return v ? sql_value(*v) : sql_value(std::monostate{});
}
sql_value p(const std::optional<std::string>& v) {
    return v ? sql_value(*v) : sql_value(std::monostate{});
}
template <class E>
requires std::is_enum_v<E> sql_value p(E v) { return std::string(to_string(v)); }
template <class E>
requires std::is_enum_v<E> sql_value p(const std::optional<E>& v) {
    return v ? sql_value(std::string(to_string(*v))) : sql_value(std::monostate{});
}
sql_value p(const std::optional<bool>& v) {
    return v ? sql_value(std::int64_t{*v ? 1 : 0}) : sql_value(std::monostate{});
}

// ---- columns ----
std::int64_t i64(const std::optional<std::string>& c) {
    std::int64_t v = 0;
    if (c) {
        std::from_chars(c->data(), c->data() + c->size(), v);
    }
    return v;
}
std::optional<std::int64_t> oi64(const std::optional<std::string>& c) {
    if (!c) {
        return std::nullopt;
    }
    return i64(c);
}
double f64(const std::optional<std::string>& c) { return c ? std::strtod(c->c_str(), nullptr) : 0; }
bool b(const std::optional<std::string>& c) {
    return c && (*c == "1" || *c == "t" || *c == "true");
}
std::string s(const std::optional<std::string>& c) { return c ? *c : std::string(); }
// Enum columns hold names this code wrote (and CHECK constraints keep); a name it cannot
// read means a newer schema wrote it, which open_repository refuses, so the first one is
// only a fallback that keeps a half-understood row readable.
template <class E, class F>
E en(const std::optional<std::string>& c, F from_string) {
    auto r = from_string(c ? std::string_view(*c) : std::string_view(), "column");
    return r ? *r : E{};
}

// The records' columns, in the order the *_from_row functions read them.
constexpr std::string_view host_columns =
    "id, mac, name, description, image_id, inventory, last_seen_at, pending, created_at, "
    "updated_at";
host host_from_row(const sql_row& r) {
    host h;
    h.id = i64(r[0]);
    h.mac = s(r[1]);
    h.name = s(r[2]);
    h.description = s(r[3]);
    h.image_id = oi64(r[4]);
    h.inventory = s(r[5]);
    h.last_seen_at = oi64(r[6]);
    h.pending = b(r[7]);
    h.created_at = i64(r[8]);
    h.updated_at = i64(r[9]);
    return h;
}

host_group group_from_row(const sql_row& r) {
    host_group g;
    g.id = i64(r[0]);
    g.name = s(r[1]);
    g.description = s(r[2]);
    g.created_at = i64(r[3]);
    g.updated_at = i64(r[4]);
    return g;
}

image image_from_row(const sql_row& r) {
    image i;
    i.id = i64(r[0]);
    i.name = s(r[1]);
    i.kind = en<image_kind>(r[2], image_kind_from_string);
    i.description = s(r[3]);
    i.size_bytes = i64(r[4]);
    i.disks = s(r[5]);
    i.is_protected = b(r[6]);
    i.created_at = i64(r[7]);
    i.updated_at = i64(r[8]);
    return i;
}

storage_node node_from_row(const sql_row& r) {
    storage_node n;
    n.id = i64(r[0]);
    n.name = s(r[1]);
    n.url = s(r[2]);
    n.path = s(r[3]);
    n.storage_group_id = oi64(r[4]);
    n.master = b(r[5]);
    n.enabled = b(r[6]);
    n.created_at = i64(r[7]);
    n.updated_at = i64(r[8]);
    return n;
}

storage_group sgroup_from_row(const sql_row& r) {
    storage_group g;
    g.id = i64(r[0]);
    g.name = s(r[1]);
    g.description = s(r[2]);
    g.created_at = i64(r[3]);
    g.updated_at = i64(r[4]);
    return g;
}

task task_from_row(const sql_row& r) {
    task t;
    t.id = i64(r[0]);
    t.kind = en<task_kind>(r[1], task_kind_from_string);
    t.host_id = i64(r[2]);
    t.image_id = oi64(r[3]);
    t.state = en<task_state>(r[4], task_state_from_string);
    t.progress.percent = f64(r[5]);
    t.progress.bytes_done = i64(r[6]);
    t.progress.bytes_total = i64(r[7]);
    t.progress.rate_Bps = i64(r[8]);
    t.progress.message = s(r[9]);
    t.session_id = oi64(r[10]);
    t.shutdown = en<shutdown_action>(r[11], shutdown_action_from_string);
    t.wol = b(r[12]);
    t.created_by = oi64(r[13]);
    t.started_at = oi64(r[14]);
    t.finished_at = oi64(r[15]);
    t.created_at = i64(r[16]);
    t.updated_at = i64(r[17]);
    t.disk = s(r[18]);
    return t;
}

session session_from_row(const sql_row& r) {
    session x;
    x.id = i64(r[0]);
    x.image_id = i64(r[1]);
    x.state = en<session_state>(r[2], session_state_from_string);
    x.group = s(r[3]);
    x.port = static_cast<std::uint16_t>(i64(r[4]));
    x.receivers_min = static_cast<std::int32_t>(i64(r[5]));
    x.wait_max_s = static_cast<std::int32_t>(i64(r[6]));
    x.rate_bps = i64(r[7]);
    x.started_at = oi64(r[8]);
    x.finished_at = oi64(r[9]);
    x.created_at = i64(r[10]);
    x.updated_at = i64(r[11]);
    return x;
}

schedule schedule_from_row(const sql_row& r) {
    schedule x;
    x.id = i64(r[0]);
    x.name = s(r[1]);
    x.kind = en<schedule_kind>(r[2], schedule_kind_from_string);
    x.at = oi64(r[3]);
    x.cron = s(r[4]);
    x.task.kind = en<task_kind>(r[5], task_kind_from_string);
    x.task.image_id = oi64(r[6]);
    x.task.shutdown = en<shutdown_action>(r[7], shutdown_action_from_string);
    x.task.wol = b(r[8]);
    x.enabled = b(r[9]);
    x.next_run_at = oi64(r[10]);
    x.last_run_at = oi64(r[11]);
    x.created_at = i64(r[12]);
    x.updated_at = i64(r[13]);
    return x;
}

user user_from_row(const sql_row& r, std::size_t first = 0) {
    user u;
    u.id = i64(r[first]);
    u.name = s(r[first + 1]);
    u.role = en<user_role>(r[first + 2], user_role_from_string);
    u.created_at = i64(r[first + 3]);
    u.updated_at = i64(r[first + 4]);
    return u;
}

token token_from_row(const sql_row& r) {
    token t;
    t.id = i64(r[0]);
    t.name = s(r[1]);
    t.user_id = i64(r[2]);
    t.expires_at = oi64(r[3]);
    t.last_used_at = oi64(r[4]);
    t.created_at = i64(r[5]);
    return t;
}

error not_found(std::string_view what, record_id id) {
    return error::format(errc::not_found, 0, "{} {} does not exist", what, id);
}

std::vector<record_id> sorted_unique(std::vector<record_id> ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

status check_page(const page& pg) {
    if (pg.limit < 1 || pg.limit > page::limit_max) {
        return error::format(errc::invalid_argument, 0, "limit: must be from 1 to {}",
                             page::limit_max);
    }
    if (pg.offset < 0) {
        return error(errc::invalid_argument, "offset: must not be negative");
    }
    return ok();
}

// Prefixes an error naming a field with the index of the record in a batch:
// "mac: ..." -> "hosts[3].mac: ...".
error in_batch(const error& e, std::size_t index) {
    const std::string_view field = error_field(e);
    if (field.empty()) {
        return error::format(e.code(), e.sys_errno(), "hosts[{}]: {}", index, e.context());
    }
    return error::format(e.code(), e.sys_errno(), "hosts[{}].{}", index, e.context());
}

constexpr std::string_view task_columns =
    "id, kind, host_id, image_id, state, percent, bytes_done, bytes_total, rate_bytes_per_s, "
    "message, session_id, shutdown, wol, created_by, started_at, finished_at, created_at, "
    "updated_at, disk";

class sql_repository final : public repository {
public:
    sql_repository(std::unique_ptr<sql_connection> db, const open_options& options)
        : _db(std::move(db)), _options(options) {}

    std::string_view backend() const noexcept override {
        return _db->dialect() == sql_dialect::sqlite ? "sqlite" : "postgresql";
    }

    // Applies the migrations this database lacks, in one transaction.
    status migrate() {
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> status {
            if (_db->dialect() == sql_dialect::postgresql) {
                // Two shoalds starting at once on one database migrate one after the other.
                SHOAL_RETURN_IF_ERROR(_db->exec_script("SELECT pg_advisory_xact_lock(7106)"));
            }
            SHOAL_RETURN_IF_ERROR(_db->exec_script(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at BIGINT NOT NULL)"));
            auto current = current_version();
            if (!current) {
                return current.err();
            }
            const int latest = schema_version_latest();
            if (*current > latest) {
                return error::format(errc::version, 0,
                                     "the database's schema is version {}, newer than this "
                                     "shoald's {}: run the newer shoald (or a backup taken "
                                     "before the upgrade)",
                                     *current, latest);
            }
            const std::string_view id_type =
                _db->dialect() == sql_dialect::sqlite
                    ? "INTEGER PRIMARY KEY AUTOINCREMENT"
                    : "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
            for (const migration& m : migrations()) {
                if (m.version <= *current) {
                    continue;
                }
                std::string sql(m.sql);
                for (auto at = sql.find("{{id}}"); at != std::string::npos;
                     at = sql.find("{{id}}", at)) {
                    sql.replace(at, 6, id_type);
                }
                if (auto st = _db->exec_script(sql); !st) {
                    return error::format(st.err().code(), 0, "migration {}: {}", m.name,
                                         st.err().context());
                }
                SHOAL_RETURN_IF_ERROR(
                    exec("INSERT INTO schema_migrations (version, name, "
                         "applied_at) VALUES ($1, $2, $3)",
                         {p(std::int64_t{m.version}), p(m.name), p(now_s())}));
            }
            return ok();
        });
    }

    result<int> schema_version() override {
        std::lock_guard lock(_mutex);
        return current_version();
    }

    // ---------------- hosts ----------------

    result<host> create_host(host h) override {
        SHOAL_RETURN_IF_ERROR(validate(h));
        h.groups = sorted_unique(std::move(h.groups));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<host> {
            auto id = insert_host(h, now_s());
            if (!id) {
                return id.err();
            }
            return load_host(*id);
        });
    }

    result<host> get_host(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_host(id);
    }

    result<host> get_host_by_mac(std::string_view mac) override {
        auto normal = normalize_mac(mac);
        if (!normal) {
            return normal.err();
        }
        std::lock_guard lock(_mutex);
        auto rows = query("SELECT id FROM hosts WHERE mac = $1", {p(*normal)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error::format(errc::not_found, 0, "no host has MAC {}", *normal);
        }
        return load_host(i64((*rows)[0][0]));
    }

    result<host> get_host_by_name(std::string_view name) override {
        std::lock_guard lock(_mutex);
        auto rows = query("SELECT id FROM hosts WHERE name = $1", {p(name)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error::format(errc::not_found, 0, "no host is named '{:.63}'", name);
        }
        return load_host(i64((*rows)[0][0]));
    }

    static constexpr std::string_view host_where =
        " WHERE (CAST($1 AS BIGINT) IS NULL OR id IN (SELECT host_id FROM host_group_members "
        "WHERE group_id = CAST($1 AS BIGINT))) AND (CAST($2 AS BIGINT) IS NULL OR image_id = "
        "CAST($2 AS BIGINT)) AND (CAST($3 AS INTEGER) IS NULL OR pending = CAST($3 AS "
        "INTEGER))";

    result<std::vector<host>> list_hosts(const host_filter& filter, page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        static const std::string sql = std::string("SELECT ") + std::string(host_columns) +
                                       " FROM hosts" + std::string(host_where) +
                                       " ORDER BY id LIMIT $4 OFFSET $5";
        std::lock_guard lock(_mutex);
        auto rows = query(sql, {p(filter.group_id), p(filter.image_id), p(filter.pending),
                                p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<host> hosts;
        hosts.reserve(rows->size());
        for (const auto& r : *rows) {
            hosts.push_back(host_from_row(r));
        }
        if (!hosts.empty()) {
            auto links = query(
                "SELECT host_id, group_id FROM host_group_members WHERE host_id BETWEEN $1 AND "
                "$2 ORDER BY host_id, group_id",
                {p(hosts.front().id), p(hosts.back().id)});
            if (!links) {
                return links.err();
            }
            attach_links(hosts, *links, &host::groups);
        }
        return hosts;
    }

    result<std::int64_t> count_hosts(const host_filter& filter) override {
        static const std::string sql =
            std::string("SELECT COUNT(*) FROM hosts") + std::string(host_where);
        std::lock_guard lock(_mutex);
        auto rows = query(sql, {p(filter.group_id), p(filter.image_id), p(filter.pending)});
        if (!rows) {
            return rows.err();
        }
        return i64((*rows)[0][0]);
    }

    result<host> update_host(host h) override {
        SHOAL_RETURN_IF_ERROR(validate(h));
        h.groups = sorted_unique(std::move(h.groups));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<host> {
            SHOAL_RETURN_IF_ERROR(must_exist("SELECT id FROM hosts WHERE id = $1", h.id, "host"));
            SHOAL_RETURN_IF_ERROR(check_host_refs(h));
            const std::int64_t now = now_s();
            SHOAL_RETURN_IF_ERROR(
                exec("UPDATE hosts SET mac = $1, name = $2, description = $3, image_id = $4, "
                     "inventory = $5, last_seen_at = $6, pending = $7, updated_at = $8 WHERE id "
                     "= $9",
                     {p(h.mac), p(h.name), p(h.description), p(h.image_id), p(h.inventory),
                      p(h.last_seen_at), p(h.pending), p(now), p(h.id)}));
            SHOAL_RETURN_IF_ERROR(
                exec("DELETE FROM host_group_members WHERE host_id = $1", {p(h.id)}));
            for (record_id g : h.groups) {
                SHOAL_RETURN_IF_ERROR(
                    exec("INSERT INTO host_group_members (group_id, host_id) VALUES ($1, $2)",
                         {p(g), p(h.id)}));
            }
            return load_host(h.id);
        });
    }

    result<host> touch_host(record_id id, std::int64_t seen_at,
                            std::optional<std::string> inventory) override {
        if (inventory) {
            auto doc_ok = check_inventory(*inventory);
            if (!doc_ok) {
                return doc_ok.err();
            }
        }
        std::lock_guard lock(_mutex);
        auto rows = query(
            "UPDATE hosts SET last_seen_at = $1, inventory = COALESCE($2, inventory), "
            "updated_at = $3 WHERE id = $4 RETURNING id",
            {p(seen_at), p(inventory), p(now_s()), p(id)}, sql_kind::write);
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("host", id);
        }
        return load_host(id);
    }

    status delete_host(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM hosts WHERE id = $1 RETURNING id", id, "host");
    }

    result<std::size_t> import_hosts(std::vector<host> hosts) override {
        // Everything that needs no database first, so a bad line costs no transaction.
        std::map<std::string, std::size_t> macs;
        std::map<std::string, std::size_t> names;
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            if (auto st = validate(hosts[i]); !st) {
                return in_batch(st.err(), i);
            }
            hosts[i].groups = sorted_unique(std::move(hosts[i].groups));
            if (auto [it, fresh] = macs.emplace(hosts[i].mac, i); !fresh) {
                return error::format(errc::conflict, 0, "hosts[{}].mac: {} is also hosts[{}]'s", i,
                                     hosts[i].mac, it->second);
            }
            if (auto [it, fresh] = names.emplace(hosts[i].name, i); !fresh) {
                return error::format(errc::conflict, 0, "hosts[{}].name: '{}' is also hosts[{}]'s",
                                     i, hosts[i].name, it->second);
            }
        }
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<std::size_t> {
            const std::int64_t now = now_s();
            for (std::size_t i = 0; i < hosts.size(); ++i) {
                if (auto id = insert_host(hosts[i], now); !id) {
                    return in_batch(id.err(), i);
                }
            }
            return hosts.size();
        });
    }

    // ---------------- groups ----------------

    result<host_group> create_group(host_group g) override {
        SHOAL_RETURN_IF_ERROR(validate(g));
        g.hosts = sorted_unique(std::move(g.hosts));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<host_group> {
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM host_groups WHERE name = $1 AND id "
                            "<> $2",
                            g.name, 0, "name", "a group"));
            SHOAL_RETURN_IF_ERROR(
                refs_exist("SELECT id FROM hosts WHERE id = $1", g.hosts, "hosts", "host"));
            const std::int64_t now = now_s();
            auto id = insert_id(
                "INSERT INTO host_groups (name, description, created_at, updated_at) VALUES "
                "($1, $2, $3, $3) RETURNING id",
                {p(g.name), p(g.description), p(now)});
            if (!id) {
                return id.err();
            }
            SHOAL_RETURN_IF_ERROR(write_members(*id, g.hosts));
            return load_group(*id);
        });
    }

    result<host_group> get_group(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_group(id);
    }

    result<std::vector<host_group>> list_groups(page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, name, description, created_at, updated_at FROM host_groups ORDER BY id "
            "LIMIT $1 OFFSET $2",
            {p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<host_group> groups;
        for (const auto& r : *rows) {
            groups.push_back(group_from_row(r));
        }
        if (!groups.empty()) {
            auto links = query(
                "SELECT group_id, host_id FROM host_group_members WHERE group_id BETWEEN $1 AND "
                "$2 ORDER BY group_id, host_id",
                {p(groups.front().id), p(groups.back().id)});
            if (!links) {
                return links.err();
            }
            attach_links(groups, *links, &host_group::hosts);
        }
        return groups;
    }

    result<host_group> update_group(host_group g) override {
        SHOAL_RETURN_IF_ERROR(validate(g));
        g.hosts = sorted_unique(std::move(g.hosts));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<host_group> {
            SHOAL_RETURN_IF_ERROR(
                must_exist("SELECT id FROM host_groups WHERE id = $1", g.id, "group"));
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM host_groups WHERE name = $1 AND id "
                            "<> $2",
                            g.name, g.id, "name", "a group"));
            SHOAL_RETURN_IF_ERROR(
                refs_exist("SELECT id FROM hosts WHERE id = $1", g.hosts, "hosts", "host"));
            SHOAL_RETURN_IF_ERROR(exec(
                "UPDATE host_groups SET name = $1, description = $2, updated_at = $3 WHERE id = "
                "$4",
                {p(g.name), p(g.description), p(now_s()), p(g.id)}));
            SHOAL_RETURN_IF_ERROR(
                exec("DELETE FROM host_group_members WHERE group_id = $1", {p(g.id)}));
            SHOAL_RETURN_IF_ERROR(write_members(g.id, g.hosts));
            return load_group(g.id);
        });
    }

    status delete_group(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM host_groups WHERE id = $1 RETURNING id", id, "group");
    }

    // ---------------- images ----------------

    result<image> create_image(image i) override {
        SHOAL_RETURN_IF_ERROR(validate(i));
        i.storage_nodes = sorted_unique(std::move(i.storage_nodes));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<image> {
            SHOAL_RETURN_IF_ERROR(unique_free("SELECT id FROM images WHERE name = $1 AND id <> $2",
                                              i.name, 0, "name", "an image"));
            SHOAL_RETURN_IF_ERROR(refs_exist("SELECT id FROM storage_nodes WHERE id = $1",
                                             i.storage_nodes, "storage_nodes", "storage node"));
            const std::int64_t now = now_s();
            auto id = insert_id(
                "INSERT INTO images (name, kind, description, size_bytes, disks, protected, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                {p(i.name), p(i.kind), p(i.description), p(i.size_bytes), p(i.disks),
                 p(i.is_protected), p(now)});
            if (!id) {
                return id.err();
            }
            SHOAL_RETURN_IF_ERROR(write_image_nodes(*id, i.storage_nodes));
            return load_image(*id);
        });
    }

    result<image> get_image(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_image(id);
    }

    result<image> get_image_by_name(std::string_view name) override {
        std::lock_guard lock(_mutex);
        auto rows = query("SELECT id FROM images WHERE name = $1", {p(name)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error::format(errc::not_found, 0, "no image is named '{:.63}'", name);
        }
        return load_image(i64((*rows)[0][0]));
    }

    result<std::vector<image>> list_images(page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, name, kind, description, size_bytes, disks, protected, created_at, "
            "updated_at FROM images ORDER BY id LIMIT $1 OFFSET $2",
            {p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<image> images;
        for (const auto& r : *rows) {
            images.push_back(image_from_row(r));
        }
        if (!images.empty()) {
            auto links = query(
                "SELECT image_id, storage_node_id FROM image_storage_nodes WHERE image_id "
                "BETWEEN $1 AND $2 ORDER BY image_id, storage_node_id",
                {p(images.front().id), p(images.back().id)});
            if (!links) {
                return links.err();
            }
            attach_links(images, *links, &image::storage_nodes);
        }
        return images;
    }

    result<image> update_image(image i) override {
        SHOAL_RETURN_IF_ERROR(validate(i));
        i.storage_nodes = sorted_unique(std::move(i.storage_nodes));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<image> {
            SHOAL_RETURN_IF_ERROR(must_exist("SELECT id FROM images WHERE id = $1", i.id, "image"));
            SHOAL_RETURN_IF_ERROR(unique_free("SELECT id FROM images WHERE name = $1 AND id <> $2",
                                              i.name, i.id, "name", "an image"));
            SHOAL_RETURN_IF_ERROR(refs_exist("SELECT id FROM storage_nodes WHERE id = $1",
                                             i.storage_nodes, "storage_nodes", "storage node"));
            SHOAL_RETURN_IF_ERROR(
                exec("UPDATE images SET name = $1, kind = $2, description = $3, size_bytes = $4, "
                     "disks = $5, protected = $6, updated_at = $7 WHERE id = $8",
                     {p(i.name), p(i.kind), p(i.description), p(i.size_bytes), p(i.disks),
                      p(i.is_protected), p(now_s()), p(i.id)}));
            SHOAL_RETURN_IF_ERROR(
                exec("DELETE FROM image_storage_nodes WHERE image_id = $1", {p(i.id)}));
            SHOAL_RETURN_IF_ERROR(write_image_nodes(i.id, i.storage_nodes));
            return load_image(i.id);
        });
    }

    status delete_image(record_id id) override {
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> status {
            auto rows = query("SELECT protected, name FROM images WHERE id = $1", {p(id)});
            if (!rows) {
                return rows.err();
            }
            if (rows->empty()) {
                return not_found("image", id);
            }
            if (b((*rows)[0][0])) {
                return error::format(errc::conflict, 0,
                                     "protected: image '{}' is protected; unprotect it before "
                                     "deleting it",
                                     s((*rows)[0][1]));
            }
            auto st = exec("DELETE FROM images WHERE id = $1", {p(id)});
            if (!st && st.err().code() == errc::invalid_argument) {
                return error::format(errc::conflict, 0,
                                     "id: image {} is used by tasks, sessions or schedules; "
                                     "delete those first",
                                     id);
            }
            return st;
        });
    }

    // ---------------- storage nodes and groups ----------------

    result<storage_node> create_storage_node(storage_node n) override {
        SHOAL_RETURN_IF_ERROR(validate(n));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<storage_node> {
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM storage_nodes WHERE name = $1 AND "
                            "id <> $2",
                            n.name, 0, "name", "a storage node"));
            SHOAL_RETURN_IF_ERROR(check_storage_group(n.storage_group_id));
            auto id = insert_id(
                "INSERT INTO storage_nodes (name, url, path, storage_group_id, master, enabled, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                {p(n.name), p(n.url), p(n.path), p(n.storage_group_id), p(n.master), p(n.enabled),
                 p(now_s())});
            if (!id) {
                return id.err();
            }
            return load_storage_node(*id);
        });
    }

    result<storage_node> get_storage_node(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_storage_node(id);
    }

    result<std::vector<storage_node>> list_storage_nodes(page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, name, url, path, storage_group_id, master, enabled, created_at, "
            "updated_at FROM storage_nodes ORDER BY id LIMIT $1 OFFSET $2",
            {p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<storage_node> nodes;
        for (const auto& r : *rows) {
            nodes.push_back(node_from_row(r));
        }
        return nodes;
    }

    result<storage_node> update_storage_node(storage_node n) override {
        SHOAL_RETURN_IF_ERROR(validate(n));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<storage_node> {
            SHOAL_RETURN_IF_ERROR(
                must_exist("SELECT id FROM storage_nodes WHERE id = $1", n.id, "storage node"));
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM storage_nodes WHERE name = $1 AND "
                            "id <> $2",
                            n.name, n.id, "name", "a storage node"));
            SHOAL_RETURN_IF_ERROR(check_storage_group(n.storage_group_id));
            SHOAL_RETURN_IF_ERROR(exec(
                "UPDATE storage_nodes SET name = $1, url = $2, path = $3, storage_group_id = $4, "
                "master = $5, enabled = $6, updated_at = $7 WHERE id = $8",
                {p(n.name), p(n.url), p(n.path), p(n.storage_group_id), p(n.master), p(n.enabled),
                 p(now_s()), p(n.id)}));
            return load_storage_node(n.id);
        });
    }

    status delete_storage_node(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM storage_nodes WHERE id = $1 RETURNING id", id,
                          "storage node");
    }

    result<storage_group> create_storage_group(storage_group g) override {
        SHOAL_RETURN_IF_ERROR(validate(g));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<storage_group> {
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM storage_groups WHERE name = $1 AND "
                            "id <> $2",
                            g.name, 0, "name", "a storage group"));
            auto id = insert_id(
                "INSERT INTO storage_groups (name, description, created_at, updated_at) VALUES "
                "($1, $2, $3, $3) RETURNING id",
                {p(g.name), p(g.description), p(now_s())});
            if (!id) {
                return id.err();
            }
            return load_storage_group(*id);
        });
    }

    result<storage_group> get_storage_group(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_storage_group(id);
    }

    result<std::vector<storage_group>> list_storage_groups(page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, name, description, created_at, updated_at FROM storage_groups ORDER BY "
            "id LIMIT $1 OFFSET $2",
            {p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<storage_group> groups;
        for (const auto& r : *rows) {
            groups.push_back(sgroup_from_row(r));
        }
        return groups;
    }

    result<storage_group> update_storage_group(storage_group g) override {
        SHOAL_RETURN_IF_ERROR(validate(g));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<storage_group> {
            SHOAL_RETURN_IF_ERROR(
                must_exist("SELECT id FROM storage_groups WHERE id = $1", g.id, "storage group"));
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM storage_groups WHERE name = $1 AND "
                            "id <> $2",
                            g.name, g.id, "name", "a storage group"));
            SHOAL_RETURN_IF_ERROR(exec(
                "UPDATE storage_groups SET name = $1, description = $2, updated_at = $3 WHERE id "
                "= $4",
                {p(g.name), p(g.description), p(now_s()), p(g.id)}));
            return load_storage_group(g.id);
        });
    }

    status delete_storage_group(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM storage_groups WHERE id = $1 RETURNING id", id,
                          "storage group");
    }

    // ---------------- tasks ----------------

    result<task> create_task(task t, std::string_view message) override {
        SHOAL_RETURN_IF_ERROR(validate(t));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<task> {
            SHOAL_RETURN_IF_ERROR(
                ref_exists("SELECT id FROM hosts WHERE id = $1", t.host_id, "host_id", "host"));
            if (t.image_id) {
                SHOAL_RETURN_IF_ERROR(ref_exists("SELECT id FROM images WHERE id = $1", *t.image_id,
                                                 "image_id", "image"));
            }
            if (t.session_id) {
                SHOAL_RETURN_IF_ERROR(ref_exists("SELECT id FROM sessions WHERE id = $1",
                                                 *t.session_id, "session_id", "session"));
            }
            if (t.created_by) {
                SHOAL_RETURN_IF_ERROR(ref_exists("SELECT id FROM users WHERE id = $1",
                                                 *t.created_by, "created_by", "user"));
            }
            auto open = open_task_locked(t.host_id);
            if (!open) {
                return open.err();
            }
            if (*open) {
                return error::format(errc::conflict, 0,
                                     "host_id: host {} already has task {} ({}, {}); it must "
                                     "finish or be cancelled first",
                                     t.host_id, (*open)->id, to_string((*open)->kind),
                                     to_string((*open)->state));
            }
            const std::int64_t now = now_s();
            auto id = insert_id(
                "INSERT INTO tasks (kind, host_id, image_id, state, session_id, shutdown, wol, "
                "created_by, created_at, updated_at, disk) VALUES ($1, $2, $3, 'queued', $4, $5, "
                "$6, $7, $8, $8, $9) RETURNING id",
                {p(t.kind), p(t.host_id), p(t.image_id), p(t.session_id), p(t.shutdown), p(t.wol),
                 p(t.created_by), p(now), p(t.disk)});
            if (!id) {
                if (id.err().code() == errc::conflict) {  // another process was faster
                    return error::format(errc::conflict, 0,
                                         "host_id: host {} already has an open task", t.host_id);
                }
                return id.err();
            }
            SHOAL_RETURN_IF_ERROR(add_event(*id, now, std::nullopt, task_state::queued, message));
            return load_task(*id);
        });
    }

    result<task> get_task(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_task(id);
    }

    static constexpr std::string_view task_where =
        " WHERE (CAST($1 AS TEXT) IS NULL OR state = CAST($1 AS TEXT)) AND (CAST($2 AS TEXT) IS "
        "NULL OR kind = CAST($2 AS TEXT)) AND (CAST($3 AS BIGINT) IS NULL OR host_id = CAST($3 "
        "AS BIGINT)) AND (CAST($4 AS BIGINT) IS NULL OR session_id = CAST($4 AS BIGINT)) AND "
        "(CAST($5 AS INTEGER) = 0 OR state IN ('queued', 'active', 'in_progress'))";

    static params_t task_filter_params(const task_filter& f) {
        return {p(f.state), p(f.kind), p(f.host_id), p(f.session_id), p(f.open_only)};
    }

    result<std::vector<task>> list_tasks(const task_filter& filter, page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        static const std::string sql = std::string("SELECT ") + std::string(task_columns) +
                                       " FROM tasks" + std::string(task_where) +
                                       " ORDER BY id LIMIT $6 OFFSET $7";
        params_t params = task_filter_params(filter);
        params.push_back(p(pg.limit));
        params.push_back(p(pg.offset));
        std::lock_guard lock(_mutex);
        auto rows = query(sql, params);
        if (!rows) {
            return rows.err();
        }
        std::vector<task> tasks;
        tasks.reserve(rows->size());
        for (const auto& r : *rows) {
            tasks.push_back(task_from_row(r));
        }
        return tasks;
    }

    result<std::int64_t> count_tasks(const task_filter& filter) override {
        static const std::string sql =
            std::string("SELECT COUNT(*) FROM tasks") + std::string(task_where);
        std::lock_guard lock(_mutex);
        auto rows = query(sql, task_filter_params(filter));
        if (!rows) {
            return rows.err();
        }
        return i64((*rows)[0][0]);
    }

    result<std::optional<task>> open_task_for_host(record_id host_id) override {
        std::lock_guard lock(_mutex);
        return open_task_locked(host_id);
    }

    result<task> transition_task(record_id id, task_state to, std::string_view message) override {
        if (auto st = check_text_arg(message, "message"); !st) {
            return st.err();
        }
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<task> {
            auto current = load_task(id);
            if (!current) {
                return current.err();
            }
            const task_state from = current->state;
            if (!task_transition_allowed(from, to)) {
                return error::format(errc::conflict, 0, "state: task {} is {}; it cannot become {}",
                                     id, to_string(from), to_string(to));
            }
            const std::int64_t now = now_s();
            const bool starts = to == task_state::active || to == task_state::in_progress;
            // Conditional on the state read above, so a concurrent change (another process)
            // makes this one fail rather than both apply.
            auto rows = query(
                "UPDATE tasks SET state = $1, started_at = COALESCE(started_at, $2), "
                "finished_at = $3, updated_at = $4 WHERE id = $5 AND state = $6 RETURNING id",
                {p(to), starts ? p(now) : sql_value(), is_final(to) ? p(now) : sql_value(), p(now),
                 p(id), p(from)},
                sql_kind::write);
            if (!rows) {
                return rows.err();
            }
            if (rows->empty()) {
                return error::format(errc::conflict, 0, "state: task {} changed meanwhile", id);
            }
            SHOAL_RETURN_IF_ERROR(add_event(id, now, from, to, message));
            return load_task(id);
        });
    }

    result<task> update_task_progress(record_id id, const task_progress& pr) override {
        SHOAL_RETURN_IF_ERROR(validate(pr));
        std::lock_guard lock(_mutex);
        auto written = write_progress(id, pr, now_s());
        if (!written) {
            return written.err();
        }
        if (!*written) {
            auto current = load_task(id);
            if (!current) {
                return current.err();
            }
            return error::format(errc::conflict, 0, "state: task {} is {}; it takes no progress",
                                 id, to_string(current->state));
        }
        return load_task(id);
    }

    result<std::size_t> update_task_progress_batch(
        const std::vector<std::pair<record_id, task_progress>>& updates) override {
        for (const auto& [id, pr] : updates) {
            if (auto st = validate(pr); !st) {
                return error::format(st.err().code(), 0, "task {}: {}", id, st.err().context());
            }
        }
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<std::size_t> {
            const std::int64_t now = now_s();
            std::size_t count = 0;
            for (const auto& [id, pr] : updates) {
                auto written = write_progress(id, pr, now);
                if (!written) {
                    return written.err();
                }
                count += *written ? 1 : 0;
            }
            return count;
        });
    }

    result<std::vector<task_event>> task_events(record_id task_id) override {
        std::lock_guard lock(_mutex);
        SHOAL_RETURN_IF_ERROR(must_exist("SELECT id FROM tasks WHERE id = $1", task_id, "task"));
        auto rows = query(
            "SELECT id, task_id, at, from_state, to_state, message FROM task_events WHERE "
            "task_id = $1 ORDER BY id",
            {p(task_id)});
        if (!rows) {
            return rows.err();
        }
        std::vector<task_event> events;
        for (const auto& r : *rows) {
            task_event e;
            e.id = i64(r[0]);
            e.task_id = i64(r[1]);
            e.at = i64(r[2]);
            if (r[3]) {
                e.from = en<task_state>(r[3], task_state_from_string);
            }
            e.to = en<task_state>(r[4], task_state_from_string);
            e.message = s(r[5]);
            events.push_back(std::move(e));
        }
        return events;
    }

    status delete_task(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM tasks WHERE id = $1 RETURNING id", id, "task");
    }

    result<std::string> issue_task_key(record_id task_id) override {
        std::string secret = random_secret_hex();
        std::lock_guard lock(_mutex);
        auto rows = query("UPDATE tasks SET key_sha256 = $1 WHERE id = $2 RETURNING id",
                          {p(sha256_hex(secret)), p(task_id)}, sql_kind::write);
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("task", task_id);
        }
        return secret;
    }

    result<task> get_task_by_key(std::string_view secret) override {
        if (!looks_like_secret(secret)) {
            return error(errc::denied, "task key: not a task key");
        }
        const std::string digest = sha256_hex(lowercase(secret));
        std::lock_guard lock(_mutex);
        auto rows = query("SELECT id FROM tasks WHERE key_sha256 = $1", {p(digest)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error(errc::denied, "task key: no task has this key");
        }
        return load_task(i64((*rows)[0][0]));
    }

    // ---------------- sessions ----------------

    result<session> create_session(session x) override {
        SHOAL_RETURN_IF_ERROR(validate(x));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<session> {
            SHOAL_RETURN_IF_ERROR(
                ref_exists("SELECT id FROM images WHERE id = $1", x.image_id, "image_id", "image"));
            auto id = insert_id(
                "INSERT INTO sessions (image_id, state, mcast_group, port, receivers_min, "
                "wait_max_s, rate_bps, created_at, updated_at) VALUES ($1, 'waiting', $2, $3, "
                "$4, $5, $6, $7, $7) RETURNING id",
                {p(x.image_id), p(x.group), p(std::int64_t{x.port}),
                 p(std::int64_t{x.receivers_min}), p(std::int64_t{x.wait_max_s}), p(x.rate_bps),
                 p(now_s())});
            if (!id) {
                return id.err();
            }
            return load_session(*id);
        });
    }

    result<session> get_session(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_session(id);
    }

    result<std::vector<session>> list_sessions(const session_filter& filter, page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, image_id, state, mcast_group, port, receivers_min, wait_max_s, rate_bps, "
            "started_at, finished_at, created_at, updated_at FROM sessions WHERE (CAST($1 AS "
            "TEXT) IS NULL OR state = CAST($1 AS TEXT)) AND (CAST($2 AS BIGINT) IS NULL OR "
            "image_id = CAST($2 AS BIGINT)) ORDER BY id LIMIT $3 OFFSET $4",
            {p(filter.state), p(filter.image_id), p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<session> sessions;
        for (const auto& r : *rows) {
            sessions.push_back(session_from_row(r));
        }
        if (!sessions.empty()) {
            auto links = query(
                "SELECT session_id, id FROM tasks WHERE session_id BETWEEN $1 AND $2 ORDER BY "
                "session_id, id",
                {p(sessions.front().id), p(sessions.back().id)});
            if (!links) {
                return links.err();
            }
            attach_links(sessions, *links, &session::tasks);
        }
        return sessions;
    }

    result<session> attach_session_tasks(record_id id,
                                         const std::vector<record_id>& task_ids) override {
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<session> {
            SHOAL_RETURN_IF_ERROR(
                must_exist("SELECT id FROM sessions WHERE id = $1", id, "session"));
            const std::int64_t now = now_s();
            for (record_id t : task_ids) {
                auto rows = query(
                    "UPDATE tasks SET session_id = $1, updated_at = $2 WHERE id = $3 RETURNING "
                    "id",
                    {p(id), p(now), p(t)}, sql_kind::write);
                if (!rows) {
                    return rows.err();
                }
                if (rows->empty()) {
                    return error::format(errc::invalid_argument, 0, "tasks: task {} does not exist",
                                         t);
                }
            }
            SHOAL_RETURN_IF_ERROR(
                exec("UPDATE sessions SET updated_at = $1 WHERE id = $2", {p(now), p(id)}));
            return load_session(id);
        });
    }

    result<session> set_session_state(record_id id, session_state to) override {
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<session> {
            auto current = load_session(id);
            if (!current) {
                return current.err();
            }
            if (!session_transition_allowed(current->state, to)) {
                return error::format(errc::conflict, 0,
                                     "state: session {} is {}; it cannot become {}", id,
                                     to_string(current->state), to_string(to));
            }
            const std::int64_t now = now_s();
            auto rows = query(
                "UPDATE sessions SET state = $1, started_at = COALESCE(started_at, $2), "
                "finished_at = $3, updated_at = $4 WHERE id = $5 AND state = $6 RETURNING id",
                {p(to), to == session_state::running ? p(now) : sql_value(),
                 is_final(to) ? p(now) : sql_value(), p(now), p(id), p(current->state)},
                sql_kind::write);
            if (!rows) {
                return rows.err();
            }
            if (rows->empty()) {
                return error::format(errc::conflict, 0, "state: session {} changed meanwhile", id);
            }
            return load_session(id);
        });
    }

    status delete_session(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM sessions WHERE id = $1 RETURNING id", id, "session");
    }

    // ---------------- schedules ----------------

    result<schedule> create_schedule(schedule x) override {
        SHOAL_RETURN_IF_ERROR(validate(x));
        x.hosts = sorted_unique(std::move(x.hosts));
        x.groups = sorted_unique(std::move(x.groups));
        if (x.kind == schedule_kind::once && !x.next_run_at) {
            x.next_run_at = x.at;
        }
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<schedule> {
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM schedules WHERE name = $1 AND id <> "
                            "$2",
                            x.name, 0, "name", "a schedule"));
            SHOAL_RETURN_IF_ERROR(check_schedule_refs(x));
            const std::int64_t now = now_s();
            auto id = insert_id(
                "INSERT INTO schedules (name, kind, at, cron, task_kind, task_image_id, "
                "task_shutdown, task_wol, enabled, next_run_at, last_run_at, created_at, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) "
                "RETURNING id",
                {p(x.name), p(x.kind), p(x.at), p(x.cron), p(x.task.kind), p(x.task.image_id),
                 p(x.task.shutdown), p(x.task.wol), p(x.enabled), p(x.next_run_at),
                 p(x.last_run_at), p(now)});
            if (!id) {
                return id.err();
            }
            SHOAL_RETURN_IF_ERROR(write_schedule_targets(*id, x));
            return load_schedule(*id);
        });
    }

    result<schedule> get_schedule(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_schedule(id);
    }

    static constexpr std::string_view schedule_columns =
        "id, name, kind, at, cron, task_kind, task_image_id, task_shutdown, task_wol, enabled, "
        "next_run_at, last_run_at, created_at, updated_at";

    result<std::vector<schedule>> list_schedules(page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        static const std::string sql = std::string("SELECT ") + std::string(schedule_columns) +
                                       " FROM schedules ORDER BY id LIMIT $1 OFFSET $2";
        std::lock_guard lock(_mutex);
        auto rows = query(sql, {p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        return schedules_with_targets(*rows);
    }

    result<std::vector<schedule>> schedules_due(std::int64_t before_or_at,
                                                std::size_t count_max) override {
        static const std::string sql =
            std::string("SELECT ") + std::string(schedule_columns) +
            " FROM schedules WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= $1 "
            "ORDER BY next_run_at, id LIMIT $2";
        const auto limit = static_cast<std::int64_t>(
            std::min<std::size_t>(count_max, static_cast<std::size_t>(page::limit_max)));
        std::lock_guard lock(_mutex);
        auto rows = query(sql, {p(before_or_at), p(limit)});
        if (!rows) {
            return rows.err();
        }
        std::vector<schedule> out;
        for (const auto& r : *rows) {
            auto x = load_schedule(i64(r[0]));
            if (!x) {
                return x.err();
            }
            out.push_back(std::move(*x));
        }
        return out;
    }

    result<schedule> update_schedule(schedule x) override {
        SHOAL_RETURN_IF_ERROR(validate(x));
        x.hosts = sorted_unique(std::move(x.hosts));
        x.groups = sorted_unique(std::move(x.groups));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<schedule> {
            SHOAL_RETURN_IF_ERROR(
                must_exist("SELECT id FROM schedules WHERE id = $1", x.id, "schedule"));
            SHOAL_RETURN_IF_ERROR(
                unique_free("SELECT id FROM schedules WHERE name = $1 AND id <> "
                            "$2",
                            x.name, x.id, "name", "a schedule"));
            SHOAL_RETURN_IF_ERROR(check_schedule_refs(x));
            SHOAL_RETURN_IF_ERROR(exec(
                "UPDATE schedules SET name = $1, kind = $2, at = $3, cron = $4, task_kind = $5, "
                "task_image_id = $6, task_shutdown = $7, task_wol = $8, enabled = $9, "
                "next_run_at = $10, last_run_at = $11, updated_at = $12 WHERE id = $13",
                {p(x.name), p(x.kind), p(x.at), p(x.cron), p(x.task.kind), p(x.task.image_id),
                 p(x.task.shutdown), p(x.task.wol), p(x.enabled), p(x.next_run_at),
                 p(x.last_run_at), p(now_s()), p(x.id)}));
            SHOAL_RETURN_IF_ERROR(
                exec("DELETE FROM schedule_hosts WHERE schedule_id = $1", {p(x.id)}));
            SHOAL_RETURN_IF_ERROR(
                exec("DELETE FROM schedule_groups WHERE schedule_id = $1", {p(x.id)}));
            SHOAL_RETURN_IF_ERROR(write_schedule_targets(x.id, x));
            return load_schedule(x.id);
        });
    }

    result<schedule> mark_schedule_run(record_id id, std::int64_t ran_at,
                                       std::optional<std::int64_t> next_run_at) override {
        std::lock_guard lock(_mutex);
        auto rows = query(
            "UPDATE schedules SET last_run_at = $1, next_run_at = $2, updated_at = $3 WHERE id = "
            "$4 RETURNING id",
            {p(ran_at), p(next_run_at), p(now_s()), p(id)}, sql_kind::write);
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("schedule", id);
        }
        return load_schedule(id);
    }

    status delete_schedule(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM schedules WHERE id = $1 RETURNING id", id, "schedule");
    }

    // ---------------- users and tokens ----------------

    result<user> create_user(user u, std::string_view password) override {
        SHOAL_RETURN_IF_ERROR(validate(u));
        SHOAL_RETURN_IF_ERROR(validate_password(password));
        auto hash = hash_password(password, _options.cheap_password_hash);  // slow: unlocked
        if (!hash) {
            return hash.err();
        }
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<user> {
            SHOAL_RETURN_IF_ERROR(unique_free("SELECT id FROM users WHERE name = $1 AND id <> $2",
                                              u.name, 0, "name", "a user"));
            auto id = insert_id(
                "INSERT INTO users (name, password_hash, role, created_at, updated_at) VALUES "
                "($1, $2, $3, $4, $4) RETURNING id",
                {p(u.name), p(*hash), p(u.role), p(now_s())});
            if (!id) {
                return id.err();
            }
            return load_user(*id);
        });
    }

    result<user> get_user(record_id id) override {
        std::lock_guard lock(_mutex);
        return load_user(id);
    }

    result<user> get_user_by_name(std::string_view name) override {
        std::lock_guard lock(_mutex);
        auto rows = query("SELECT id FROM users WHERE name = $1", {p(name)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error::format(errc::not_found, 0, "no user is named '{:.63}'", name);
        }
        return load_user(i64((*rows)[0][0]));
    }

    result<std::vector<user>> list_users(page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, name, role, created_at, updated_at FROM users ORDER BY id LIMIT $1 "
            "OFFSET $2",
            {p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<user> users;
        for (const auto& r : *rows) {
            users.push_back(user_from_row(r));
        }
        return users;
    }

    result<user> update_user(user u) override {
        SHOAL_RETURN_IF_ERROR(validate(u));
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<user> {
            SHOAL_RETURN_IF_ERROR(must_exist("SELECT id FROM users WHERE id = $1", u.id, "user"));
            SHOAL_RETURN_IF_ERROR(unique_free("SELECT id FROM users WHERE name = $1 AND id <> $2",
                                              u.name, u.id, "name", "a user"));
            SHOAL_RETURN_IF_ERROR(
                exec("UPDATE users SET name = $1, role = $2, updated_at = $3 WHERE id = $4",
                     {p(u.name), p(u.role), p(now_s()), p(u.id)}));
            return load_user(u.id);
        });
    }

    status set_password(record_id id, std::string_view password) override {
        SHOAL_RETURN_IF_ERROR(validate_password(password));
        auto hash = hash_password(password, _options.cheap_password_hash);
        if (!hash) {
            return hash.err();
        }
        std::lock_guard lock(_mutex);
        auto rows =
            query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 RETURNING id",
                  {p(*hash), p(now_s()), p(id)}, sql_kind::write);
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("user", id);
        }
        return ok();
    }

    status delete_user(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM users WHERE id = $1 RETURNING id", id, "user");
    }

    result<user> verify_password(std::string_view name, std::string_view password) override {
        std::optional<std::string> hash;
        std::optional<user> found;
        {
            std::lock_guard lock(_mutex);
            auto rows = query(
                "SELECT id, name, role, created_at, updated_at, password_hash FROM users WHERE "
                "name = $1",
                {p(name)});
            if (!rows) {
                return rows.err();
            }
            if (!rows->empty()) {
                found = user_from_row((*rows)[0]);
                hash = (*rows)[0][5];
            }
        }
        // An unknown user costs the same Argon2id as a known one, so timing does not tell
        // which names exist.
        const bool match = password_matches(hash ? *hash : dummy_hash(), password);
        if (!found || !match) {
            return error(errc::denied, "wrong user name or password");
        }
        return *found;
    }

    result<new_token> create_token(record_id user_id, std::string_view name,
                                   std::optional<std::int64_t> expires_at) override {
        SHOAL_RETURN_IF_ERROR(validate_token_name(name));
        std::string secret = random_secret_hex();
        std::lock_guard lock(_mutex);
        return in_tx([&]() -> result<new_token> {
            SHOAL_RETURN_IF_ERROR(
                ref_exists("SELECT id FROM users WHERE id = $1", user_id, "user_id", "user"));
            auto id = insert_id(
                "INSERT INTO tokens (name, user_id, secret_sha256, expires_at, created_at) VALUES "
                "($1, $2, $3, $4, $5) RETURNING id",
                {p(name), p(user_id), p(sha256_hex(secret)), p(expires_at), p(now_s())});
            if (!id) {
                return id.err();
            }
            auto rows = query(
                "SELECT id, name, user_id, expires_at, last_used_at, created_at FROM tokens WHERE "
                "id = $1",
                {p(*id)});
            if (!rows) {
                return rows.err();
            }
            return new_token{token_from_row((*rows)[0]), secret};
        });
    }

    // Writes last_used_at at most this often per token: a token used for every API call
    // should not turn every read into a write.
    static constexpr std::int64_t last_used_resolution_s = 60;

    result<token_identity> lookup_token(std::string_view secret) override {
        if (!looks_like_secret(secret)) {
            return error(errc::denied, "token: not a shoal API token");
        }
        const std::string digest = sha256_hex(lowercase(secret));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT t.id, t.name, t.user_id, t.expires_at, t.last_used_at, t.created_at, u.id, "
            "u.name, u.role, u.created_at, u.updated_at FROM tokens t JOIN users u ON u.id = "
            "t.user_id WHERE t.secret_sha256 = $1",
            {p(digest)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error(errc::denied, "token: unknown or revoked");
        }
        token_identity id{token_from_row((*rows)[0]), user_from_row((*rows)[0], 6)};
        const std::int64_t now = now_s();
        if (id.record.expires_at && *id.record.expires_at <= now) {
            return error(errc::denied, "token: expired");
        }
        if (!id.record.last_used_at || *id.record.last_used_at + last_used_resolution_s <= now) {
            SHOAL_RETURN_IF_ERROR(exec("UPDATE tokens SET last_used_at = $1 WHERE id = $2",
                                       {p(now), p(id.record.id)}));
            id.record.last_used_at = now;
        }
        return id;
    }

    result<std::vector<token>> list_tokens(std::optional<record_id> user_id, page pg) override {
        SHOAL_RETURN_IF_ERROR(check_page(pg));
        std::lock_guard lock(_mutex);
        auto rows = query(
            "SELECT id, name, user_id, expires_at, last_used_at, created_at FROM tokens WHERE "
            "(CAST($1 AS BIGINT) IS NULL OR user_id = CAST($1 AS BIGINT)) ORDER BY id LIMIT $2 "
            "OFFSET $3",
            {p(user_id), p(pg.limit), p(pg.offset)});
        if (!rows) {
            return rows.err();
        }
        std::vector<token> tokens;
        for (const auto& r : *rows) {
            tokens.push_back(token_from_row(r));
        }
        return tokens;
    }

    status delete_token(record_id id) override {
        std::lock_guard lock(_mutex);
        return delete_one("DELETE FROM tokens WHERE id = $1 RETURNING id", id, "token");
    }

private:
    // ---- plumbing (all called with _mutex held) ----

    result<rows_t> query(std::string_view sql, const params_t& params,
                         sql_kind kind = sql_kind::read) {
        return _db->exec(sql, params, kind);
    }
    status exec(std::string_view sql, const params_t& params) {
        auto r = _db->exec(sql, params, sql_kind::write);
        if (!r) {
            return r.err();
        }
        return ok();
    }
    result<record_id> insert_id(std::string_view sql, const params_t& params) {
        auto r = _db->exec(sql, params, sql_kind::write);
        if (!r) {
            return r.err();
        }
        SHOAL_ASSERT(r->size() == 1);
        return i64((*r)[0][0]);
    }

    // Runs fn in a transaction: committed if it succeeds, rolled back if not.
    template <class F>
    auto in_tx(F&& fn) -> decltype(fn()) {
        if (auto st = _db->begin(); !st) {
            return st.err();
        }
        auto r = fn();
        if (!r) {
            _db->rollback();
            return r;
        }
        if (auto st = _db->commit(); !st) {
            _db->rollback();
            return st.err();
        }
        return r;
    }

    result<int> current_version() {
        auto rows = query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {});
        if (!rows) {
            return rows.err();
        }
        return static_cast<int>(i64((*rows)[0][0]));
    }

    status must_exist(std::string_view sql, record_id id, std::string_view what) {
        auto rows = query(sql, {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found(what, id);
        }
        return ok();
    }

    // A reference in a record: a missing one is the caller's mistake in that field.
    status ref_exists(std::string_view sql, record_id id, std::string_view field,
                      std::string_view what) {
        auto rows = query(sql, {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return error::format(errc::invalid_argument, 0, "{}: {} {} does not exist", field, what,
                                 id);
        }
        return ok();
    }

    status refs_exist(std::string_view sql, const std::vector<record_id>& ids,
                      std::string_view field, std::string_view what) {
        for (record_id id : ids) {
            SHOAL_RETURN_IF_ERROR(ref_exists(sql, id, field, what));
        }
        return ok();
    }

    status unique_free(std::string_view sql, std::string_view value, record_id self,
                       std::string_view field, std::string_view what) {
        auto rows = query(sql, {p(value), p(self)});
        if (!rows) {
            return rows.err();
        }
        if (!rows->empty()) {
            return error::format(errc::conflict, 0, "{}: {} with {} '{:.63}' exists (id {})", field,
                                 what, field, value, s((*rows)[0][0]));
        }
        return ok();
    }

    status delete_one(std::string_view sql, record_id id, std::string_view what) {
        auto rows = query(sql, {p(id)}, sql_kind::write);
        if (!rows) {
            if (rows.err().code() == errc::invalid_argument) {  // still referenced
                return error::format(errc::conflict, 0, "id: {} {} is still in use", what, id);
            }
            return rows.err();
        }
        if (rows->empty()) {
            return not_found(what, id);
        }
        return ok();
    }

    static status check_text_arg(std::string_view text, std::string_view field) {
        task_progress probe;
        probe.message = std::string(text);
        if (auto st = validate(probe); !st) {
            return error::format(errc::invalid_argument, 0,
                                 "{}: too long or holds control "
                                 "characters",
                                 field);
        }
        return ok();
    }

    static status check_inventory(const std::string& inventory) {
        host probe;
        probe.mac = "02:00:00:00:00:01";
        probe.name = "probe";
        probe.inventory = inventory;
        return validate(probe);
    }

    static std::string lowercase(std::string_view text) {
        std::string out(text);
        for (char& c : out) {
            if (c >= 'A' && c <= 'Z') {
                c = static_cast<char>(c - 'A' + 'a');
            }
        }
        return out;
    }

    // Spreads (owner id, linked id) rows, ordered by owner, over records ordered by id.
    template <class R>
    static void attach_links(std::vector<R>& records, const rows_t& links,
                             std::vector<record_id> R::*member) {
        std::size_t at = 0;
        for (const auto& l : links) {
            const record_id owner = i64(l[0]);
            while (at < records.size() && records[at].id < owner) {
                ++at;
            }
            if (at == records.size()) {
                break;
            }
            if (records[at].id == owner) {
                (records[at].*member).push_back(i64(l[1]));
            }
        }
    }

    std::vector<record_id> ids_of(const rows_t& rows) {
        std::vector<record_id> ids;
        ids.reserve(rows.size());
        for (const auto& r : rows) {
            ids.push_back(i64(r[0]));
        }
        return ids;
    }

    result<std::vector<record_id>> id_list(std::string_view sql, record_id id) {
        auto rows = query(sql, {p(id)});
        if (!rows) {
            return rows.err();
        }
        return ids_of(*rows);
    }

    status check_host_refs(const host& h) {
        SHOAL_RETURN_IF_ERROR(unique_free("SELECT id FROM hosts WHERE mac = $1 AND id <> $2", h.mac,
                                          h.id, "mac", "a host"));
        SHOAL_RETURN_IF_ERROR(unique_free("SELECT id FROM hosts WHERE name = $1 AND id <> $2",
                                          h.name, h.id, "name", "a host"));
        if (h.image_id) {
            SHOAL_RETURN_IF_ERROR(ref_exists("SELECT id FROM images WHERE id = $1", *h.image_id,
                                             "image_id", "image"));
        }
        return refs_exist("SELECT id FROM host_groups WHERE id = $1", h.groups, "groups", "group");
    }

    result<record_id> insert_host(const host& h, std::int64_t now) {
        SHOAL_RETURN_IF_ERROR(check_host_refs(h));
        auto id = insert_id(
            "INSERT INTO hosts (mac, name, description, image_id, inventory, last_seen_at, "
            "pending, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) "
            "RETURNING id",
            {p(h.mac), p(h.name), p(h.description), p(h.image_id), p(h.inventory),
             p(h.last_seen_at), p(h.pending), p(now)});
        if (!id) {
            return id.err();
        }
        for (record_id g : h.groups) {
            SHOAL_RETURN_IF_ERROR(
                exec("INSERT INTO host_group_members (group_id, host_id) VALUES ($1, $2)",
                     {p(g), p(*id)}));
        }
        return *id;
    }

    result<host> load_host(record_id id) {
        static const std::string sql =
            std::string("SELECT ") + std::string(host_columns) + " FROM hosts WHERE id = $1";
        auto rows = query(sql, {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("host", id);
        }
        host h = host_from_row((*rows)[0]);
        auto groups = id_list(
            "SELECT group_id FROM host_group_members WHERE host_id = $1 ORDER BY group_id", id);
        if (!groups) {
            return groups.err();
        }
        h.groups = std::move(*groups);
        return h;
    }

    status write_members(record_id group_id, const std::vector<record_id>& hosts) {
        for (record_id h : hosts) {
            SHOAL_RETURN_IF_ERROR(
                exec("INSERT INTO host_group_members (group_id, host_id) VALUES ($1, $2)",
                     {p(group_id), p(h)}));
        }
        return ok();
    }

    result<host_group> load_group(record_id id) {
        auto rows = query(
            "SELECT id, name, description, created_at, updated_at FROM host_groups WHERE id = $1",
            {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("group", id);
        }
        host_group g = group_from_row((*rows)[0]);
        auto hosts = id_list(
            "SELECT host_id FROM host_group_members WHERE group_id = $1 ORDER BY host_id", id);
        if (!hosts) {
            return hosts.err();
        }
        g.hosts = std::move(*hosts);
        return g;
    }

    status write_image_nodes(record_id image_id, const std::vector<record_id>& nodes) {
        for (record_id n : nodes) {
            SHOAL_RETURN_IF_ERROR(
                exec("INSERT INTO image_storage_nodes (image_id, storage_node_id) VALUES ($1, $2)",
                     {p(image_id), p(n)}));
        }
        return ok();
    }

    result<image> load_image(record_id id) {
        auto rows = query(
            "SELECT id, name, kind, description, size_bytes, disks, protected, created_at, "
            "updated_at FROM images WHERE id = $1",
            {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("image", id);
        }
        image i = image_from_row((*rows)[0]);
        auto nodes = id_list(
            "SELECT storage_node_id FROM image_storage_nodes WHERE image_id = $1 ORDER BY "
            "storage_node_id",
            id);
        if (!nodes) {
            return nodes.err();
        }
        i.storage_nodes = std::move(*nodes);
        return i;
    }

    status check_storage_group(const std::optional<record_id>& id) {
        if (!id) {
            return ok();
        }
        return ref_exists("SELECT id FROM storage_groups WHERE id = $1", *id, "storage_group_id",
                          "storage group");
    }

    result<storage_node> load_storage_node(record_id id) {
        auto rows = query(
            "SELECT id, name, url, path, storage_group_id, master, enabled, created_at, "
            "updated_at FROM storage_nodes WHERE id = $1",
            {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("storage node", id);
        }
        return node_from_row((*rows)[0]);
    }

    result<storage_group> load_storage_group(record_id id) {
        auto rows = query(
            "SELECT id, name, description, created_at, updated_at FROM storage_groups WHERE id = "
            "$1",
            {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("storage group", id);
        }
        return sgroup_from_row((*rows)[0]);
    }

    result<task> load_task(record_id id) {
        static const std::string sql =
            std::string("SELECT ") + std::string(task_columns) + " FROM tasks WHERE id = $1";
        auto rows = query(sql, {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("task", id);
        }
        return task_from_row((*rows)[0]);
    }

    result<std::optional<task>> open_task_locked(record_id host_id) {
        static const std::string sql = std::string("SELECT ") + std::string(task_columns) +
                                       " FROM tasks WHERE host_id = $1 AND state IN ('queued', "
                                       "'active', 'in_progress')";
        auto rows = query(sql, {p(host_id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return std::optional<task>();
        }
        return std::optional<task>(task_from_row((*rows)[0]));
    }

    status add_event(record_id task_id, std::int64_t at, std::optional<task_state> from,
                     task_state to, std::string_view message) {
        return exec(
            "INSERT INTO task_events (task_id, at, from_state, to_state, message) VALUES ($1, "
            "$2, $3, $4, $5)",
            {p(task_id), p(at), p(from), p(to), p(message)});
    }

    // Whether the progress was written (false: no such task or it is final).
    result<bool> write_progress(record_id id, const task_progress& pr, std::int64_t now) {
        auto rows = query(
            "UPDATE tasks SET percent = $1, bytes_done = $2, bytes_total = $3, rate_bytes_per_s "
            "= $4, message = $5, updated_at = $6 WHERE id = $7 AND state IN ('queued', "
            "'active', 'in_progress') RETURNING id",
            {p(pr.percent), p(pr.bytes_done), p(pr.bytes_total), p(pr.rate_Bps), p(pr.message),
             p(now), p(id)},
            sql_kind::write);
        if (!rows) {
            return rows.err();
        }
        return !rows->empty();
    }

    result<session> load_session(record_id id) {
        auto rows = query(
            "SELECT id, image_id, state, mcast_group, port, receivers_min, wait_max_s, rate_bps, "
            "started_at, finished_at, created_at, updated_at FROM sessions WHERE id = $1",
            {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("session", id);
        }
        session x = session_from_row((*rows)[0]);
        auto tasks = id_list("SELECT id FROM tasks WHERE session_id = $1 ORDER BY id", id);
        if (!tasks) {
            return tasks.err();
        }
        x.tasks = std::move(*tasks);
        return x;
    }

    status check_schedule_refs(const schedule& x) {
        if (x.task.image_id) {
            SHOAL_RETURN_IF_ERROR(ref_exists("SELECT id FROM images WHERE id = $1",
                                             *x.task.image_id, "task.image_id", "image"));
        }
        SHOAL_RETURN_IF_ERROR(
            refs_exist("SELECT id FROM hosts WHERE id = $1", x.hosts, "hosts", "host"));
        return refs_exist("SELECT id FROM host_groups WHERE id = $1", x.groups, "groups", "group");
    }

    status write_schedule_targets(record_id id, const schedule& x) {
        for (record_id h : x.hosts) {
            SHOAL_RETURN_IF_ERROR(
                exec("INSERT INTO schedule_hosts (schedule_id, host_id) VALUES ($1, $2)",
                     {p(id), p(h)}));
        }
        for (record_id g : x.groups) {
            SHOAL_RETURN_IF_ERROR(
                exec("INSERT INTO schedule_groups (schedule_id, group_id) VALUES ($1, $2)",
                     {p(id), p(g)}));
        }
        return ok();
    }

    result<schedule> load_schedule(record_id id) {
        static const std::string sql = std::string("SELECT ") + std::string(schedule_columns) +
                                       " FROM schedules WHERE id = $1";
        auto rows = query(sql, {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("schedule", id);
        }
        auto list = schedules_with_targets(*rows);
        if (!list) {
            return list.err();
        }
        return std::move((*list)[0]);
    }

    result<std::vector<schedule>> schedules_with_targets(const rows_t& rows) {
        std::vector<schedule> out;
        for (const auto& r : rows) {
            schedule x = schedule_from_row(r);
            auto hosts = id_list(
                "SELECT host_id FROM schedule_hosts WHERE schedule_id = $1 ORDER BY host_id", x.id);
            if (!hosts) {
                return hosts.err();
            }
            auto groups = id_list(
                "SELECT group_id FROM schedule_groups WHERE schedule_id = $1 ORDER BY group_id",
                x.id);
            if (!groups) {
                return groups.err();
            }
            x.hosts = std::move(*hosts);
            x.groups = std::move(*groups);
            out.push_back(std::move(x));
        }
        return out;
    }

    result<user> load_user(record_id id) {
        auto rows = query("SELECT id, name, role, created_at, updated_at FROM users WHERE id = $1",
                          {p(id)});
        if (!rows) {
            return rows.err();
        }
        if (rows->empty()) {
            return not_found("user", id);
        }
        return user_from_row((*rows)[0]);
    }

    // A hash of nothing anyone knows, made with this repository's cost, for unknown users.
    const std::string& dummy_hash() {
        std::call_once(_dummy_once, [this] {
            auto h = hash_password(random_secret_hex(), _options.cheap_password_hash);
            _dummy_hash = h ? *h : std::string();
        });
        return _dummy_hash;
    }

    std::unique_ptr<sql_connection> _db;
    open_options _options;
    std::mutex _mutex;  // one statement (or transaction) at a time on the one connection
    std::once_flag _dummy_once;
    std::string _dummy_hash;
};

}  // namespace

result<std::unique_ptr<repository>> make_sql_repository(std::unique_ptr<sql_connection> db,
                                                        const open_options& options) {
    auto repo = std::make_unique<sql_repository>(std::move(db), options);
    SHOAL_RETURN_IF_ERROR(repo->migrate());
    return std::unique_ptr<repository>(std::move(repo));
}

int schema_version_latest() noexcept { return migrations().back().version; }

}  // namespace shoal::store
