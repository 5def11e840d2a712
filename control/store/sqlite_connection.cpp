// SQLite: one connection, WAL, foreign keys, a busy timeout, statements prepared once and
// kept. The repository serializes calls on it (one mutex), which SQLite's single writer
// asks for anyway; WAL lets other processes (shoal CLI reading the file) read meanwhile.
#include <sqlite3.h>

#include <string>
#include <unordered_map>

#include "store/repository.h"
#include "store/sql.h"

namespace shoal::store {

namespace {

// $1..$N (PostgreSQL's placeholders, which the repository writes) to ?1..?N, SQLite's
// numbered parameters: same numbers, so parameters bind by index in both.
std::string to_sqlite_placeholders(std::string_view sql) {
    std::string out;
    out.reserve(sql.size());
    bool in_string = false;
    for (std::size_t i = 0; i < sql.size(); ++i) {
        const char c = sql[i];
        if (c == '\'') {
            in_string = !in_string;
        }
        if (!in_string && c == '$' && i + 1 < sql.size() && sql[i + 1] >= '0' &&
            sql[i + 1] <= '9') {
            out += '?';
            continue;
        }
        out += c;
    }
    return out;
}

class sqlite_connection final : public sql_connection {
public:
    explicit sqlite_connection(sqlite3* db) : _db(db) {}
    ~sqlite_connection() override {
        for (auto& [sql, stmt] : _statements) {
            sqlite3_finalize(stmt);
        }
        sqlite3_close_v2(_db);
    }
    sqlite_connection(const sqlite_connection&) = delete;
    sqlite_connection& operator=(const sqlite_connection&) = delete;

    sql_dialect dialect() const noexcept override { return sql_dialect::sqlite; }

    result<std::vector<sql_row>> exec(std::string_view sql, const std::vector<sql_value>& params,
                                      sql_kind) override {
        auto stmt_r = prepare(sql);
        if (!stmt_r) {
            return stmt_r.err();
        }
        sqlite3_stmt* stmt = *stmt_r;
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        for (std::size_t i = 0; i < params.size(); ++i) {
            const int index = static_cast<int>(i + 1);
            int rc = SQLITE_OK;
            const sql_value& v = params[i];
            if (std::holds_alternative<std::monostate>(v)) {
                rc = sqlite3_bind_null(stmt, index);
            } else if (const auto* n = std::get_if<std::int64_t>(&v)) {
                rc = sqlite3_bind_int64(stmt, index, *n);
            } else if (const auto* d = std::get_if<double>(&v)) {
                rc = sqlite3_bind_double(stmt, index, *d);
            } else {
                const std::string& s = std::get<std::string>(v);
                rc = sqlite3_bind_text(stmt, index, s.data(), static_cast<int>(s.size()),
                                       SQLITE_TRANSIENT);
            }
            if (rc != SQLITE_OK) {
                return failure(rc, "binding a parameter");
            }
        }
        std::vector<sql_row> rows;
        const int columns = sqlite3_column_count(stmt);
        for (;;) {
            const int rc = sqlite3_step(stmt);
            if (rc == SQLITE_DONE) {
                break;
            }
            if (rc != SQLITE_ROW) {
                auto e = failure(rc, "running a statement");
                sqlite3_reset(stmt);
                return e;
            }
            sql_row row(static_cast<std::size_t>(columns));
            for (int c = 0; c < columns; ++c) {
                if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
                    continue;
                }
                const auto* text = sqlite3_column_text(stmt, c);
                const int size = sqlite3_column_bytes(stmt, c);
                row[static_cast<std::size_t>(c)] = std::string(reinterpret_cast<const char*>(text),
                                                               static_cast<std::size_t>(size));
            }
            rows.push_back(std::move(row));
        }
        sqlite3_reset(stmt);
        return rows;
    }

    status exec_script(std::string_view sql) override {
        const std::string text(sql);
        char* message = nullptr;
        const int rc = sqlite3_exec(_db, text.c_str(), nullptr, nullptr, &message);
        if (rc != SQLITE_OK) {
            auto e = error::format(code_of(rc), 0, "sqlite: {}",
                                   message != nullptr ? message : sqlite3_errstr(rc));
            sqlite3_free(message);
            return e;
        }
        return ok();
    }

    bool in_transaction() const noexcept override { return sqlite3_get_autocommit(_db) == 0; }

    // IMMEDIATE takes the write lock at once, so two writers never deadlock upgrading.
    status begin() override { return exec_script("BEGIN IMMEDIATE"); }
    status commit() override { return exec_script("COMMIT"); }
    void rollback() noexcept override {
        if (in_transaction()) {
            sqlite3_exec(_db, "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }

private:
    static errc code_of(int rc) {
        switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY: return errc::conflict;
        case SQLITE_CONSTRAINT_FOREIGNKEY: return errc::invalid_argument;
        case SQLITE_BUSY:
        case SQLITE_LOCKED: return errc::unavailable;
        default: return errc::io;
        }
    }

    error failure(int rc, std::string_view what) {
        // The connection's extended code is the more precise one (UNIQUE, FOREIGNKEY).
        const int extended = sqlite3_extended_errcode(_db);
        return error::format(code_of((extended & 0xff) == (rc & 0xff) ? extended : rc), 0,
                             "sqlite: {} ({})", sqlite3_errmsg(_db), what);
    }

    result<sqlite3_stmt*> prepare(std::string_view sql) {
        std::string key(sql);
        if (auto it = _statements.find(key); it != _statements.end()) {
            return it->second;
        }
        const std::string text = to_sqlite_placeholders(sql);
        sqlite3_stmt* stmt = nullptr;
        const int rc = sqlite3_prepare_v3(_db, text.c_str(), static_cast<int>(text.size()),
                                          SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) {
            return error::format(errc::io, 0, "sqlite: {} preparing {:.80}", sqlite3_errmsg(_db),
                                 sql);
        }
        _statements.emplace(std::move(key), stmt);
        return stmt;
    }

    sqlite3* _db;
    // The repository's statements are a fixed set of constant strings: this cache is
    // bounded by them.
    std::unordered_map<std::string, sqlite3_stmt*> _statements;
};

}  // namespace

result<std::unique_ptr<sql_connection>> open_sqlite(const std::string& path,
                                                    const open_options& options) {
    sqlite3* db = nullptr;
    const int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
        auto e = error::format(errc::io, 0, "sqlite: cannot open {:.120}: {}", path,
                               db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return e;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, options.busy_timeout_ms);
    auto conn = std::make_unique<sqlite_connection>(db);
    // WAL: readers do not block the writer; NORMAL sync is durable across a crash of the
    // process in WAL mode (a power loss may lose the last transactions, not corrupt).
    SHOAL_RETURN_IF_ERROR(conn->exec_script(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
    auto fk = conn->exec("PRAGMA foreign_keys", {}, sql_kind::read);
    if (!fk || fk->size() != 1 || (*fk)[0][0] != "1") {
        return error(errc::unsupported, "sqlite: this SQLite does not enforce foreign keys");
    }
    return std::unique_ptr<sql_connection>(std::move(conn));
}

}  // namespace shoal::store
