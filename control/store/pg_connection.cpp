// PostgreSQL over libpq: statements prepared once per connection and run with
// PQexecPrepared (parameters as text, never spliced into SQL). When the server goes away
// (restarted, connection killed) the connection is reset: a read or a BEGIN is retried
// once on the new connection; a write that may have reached the server is not (it returns
// unavailable and the caller decides), and neither is anything inside a transaction.
#include <libpq-fe.h>

#include <cstring>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "common/log.h"
#include "store/repository.h"
#include "store/sql.h"

namespace shoal::store {

namespace {

void ignore_notice(void*, const char*) {}

class pg_connection final : public sql_connection {
public:
    pg_connection(PGconn* conn, std::string conninfo, int connect_timeout_s)
        : _conn(conn), _conninfo(std::move(conninfo)), _connect_timeout_s(connect_timeout_s) {
        PQsetNoticeProcessor(_conn, ignore_notice, nullptr);
    }
    ~pg_connection() override { PQfinish(_conn); }
    pg_connection(const pg_connection&) = delete;
    pg_connection& operator=(const pg_connection&) = delete;

    sql_dialect dialect() const noexcept override { return sql_dialect::postgresql; }

    result<std::vector<sql_row>> exec(std::string_view sql, const std::vector<sql_value>& params,
                                      sql_kind kind) override {
        // A connection known to be broken is reset first: nothing was sent on it yet, so
        // even a write is safe to run on the new one.
        if (PQstatus(_conn) != CONNECTION_OK) {
            SHOAL_RETURN_IF_ERROR(reset());
        }
        const bool retry_safe = kind == sql_kind::read && !_in_transaction;
        auto r = exec_once(sql, params);
        if (!r && r.err().code() == errc::unavailable && retry_safe) {
            log::warn("postgresql: connection lost; reconnecting and reading again");
            SHOAL_RETURN_IF_ERROR(reset());
            r = exec_once(sql, params);
        }
        return r;
    }

    status exec_script(std::string_view sql) override {
        if (PQstatus(_conn) != CONNECTION_OK) {
            SHOAL_RETURN_IF_ERROR(reset());
        }
        const std::string text(sql);
        PGresult* res = PQexec(_conn, text.c_str());
        auto s = check(res);
        PQclear(res);
        if (!s) {
            return s.err();
        }
        return ok();
    }

    bool in_transaction() const noexcept override { return _in_transaction; }

    status begin() override {
        // BEGIN changes nothing, so it may always be sent again on a new connection.
        auto s = exec_script("BEGIN");
        if (!s && s.err().code() == errc::unavailable) {
            log::warn("postgresql: connection lost; reconnecting");
            SHOAL_RETURN_IF_ERROR(reset());
            s = exec_script("BEGIN");
        }
        if (s) {
            _in_transaction = true;
        }
        return s;
    }
    status commit() override {
        _in_transaction = false;
        return exec_script("COMMIT");
    }
    void rollback() noexcept override {
        _in_transaction = false;
        if (PQstatus(_conn) == CONNECTION_OK) {
            PGresult* res = PQexec(_conn, "ROLLBACK");
            PQclear(res);
        }
    }

private:
    status reset() {
        _prepared.clear();  // prepared statements die with their session
        _in_transaction = false;
        PQreset(_conn);
        if (PQstatus(_conn) != CONNECTION_OK) {
            return error::format(errc::unavailable, 0, "postgresql: cannot reconnect: {}",
                                 first_line(PQerrorMessage(_conn)));
        }
        PQsetNoticeProcessor(_conn, ignore_notice, nullptr);
        return ok();
    }

    static std::string_view first_line(const char* message) {
        std::string_view m = message != nullptr ? message : "";
        if (auto nl = m.find('\n'); nl != std::string_view::npos) {
            m = m.substr(0, nl);
        }
        return m;
    }

    // Maps a result to ok or an error; the SQLSTATE class says which.
    result<std::vector<sql_row>> check(PGresult* res) {
        const ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            return std::vector<sql_row>();
        }
        const char* sqlstate = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
        const std::string_view state = sqlstate != nullptr ? sqlstate : "";
        const std::string_view message =
            first_line(res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(_conn));
        errc code = errc::io;
        if (state == "23505") {
            code = errc::conflict;
        } else if (state == "23503") {
            code = errc::invalid_argument;
        } else if (PQstatus(_conn) != CONNECTION_OK || state.starts_with("08") ||
                   state.starts_with("57P")) {
            // Lost connection, or the server is shutting down or restarting.
            code = errc::unavailable;
        }
        return error::format(code, 0, "postgresql: {}", message.empty() ? "error" : message);
    }

    result<std::vector<sql_row>> exec_once(std::string_view sql,
                                           const std::vector<sql_value>& params) {
        auto name_r = prepared_name(sql, params.size());
        if (!name_r) {
            return name_r.err();
        }
        std::vector<std::string> texts(params.size());
        std::vector<const char*> values(params.size(), nullptr);
        for (std::size_t i = 0; i < params.size(); ++i) {
            const sql_value& v = params[i];
            if (std::holds_alternative<std::monostate>(v)) {
                continue;
            }
            if (const auto* n = std::get_if<std::int64_t>(&v)) {
                texts[i] = fmt::format("{}", *n);
            } else if (const auto* d = std::get_if<double>(&v)) {
                texts[i] = fmt::format("{:.17g}", *d);
            } else {
                texts[i] = std::get<std::string>(v);
            }
            values[i] = texts[i].c_str();
        }
        PGresult* res = PQexecPrepared(_conn, name_r->c_str(), static_cast<int>(params.size()),
                                       values.data(), nullptr, nullptr, 0);
        auto checked = check(res);
        if (!checked) {
            PQclear(res);
            return checked.err();
        }
        std::vector<sql_row> rows;
        const int tuples = PQntuples(res);
        const int fields = PQnfields(res);
        rows.reserve(static_cast<std::size_t>(tuples));
        for (int t = 0; t < tuples; ++t) {
            sql_row row(static_cast<std::size_t>(fields));
            for (int f = 0; f < fields; ++f) {
                if (PQgetisnull(res, t, f) == 0) {
                    row[static_cast<std::size_t>(f)] = std::string(
                        PQgetvalue(res, t, f), static_cast<std::size_t>(PQgetlength(res, t, f)));
                }
            }
            rows.push_back(std::move(row));
        }
        PQclear(res);
        return rows;
    }

    result<std::string> prepared_name(std::string_view sql, std::size_t param_count) {
        std::string key(sql);
        if (auto it = _prepared.find(key); it != _prepared.end()) {
            return it->second;
        }
        std::string name = fmt::format("shoal_{}", _prepared_serial++);
        PGresult* res =
            PQprepare(_conn, name.c_str(), key.c_str(), static_cast<int>(param_count), nullptr);
        auto checked = check(res);
        PQclear(res);
        if (!checked) {
            return checked.err();
        }
        _prepared.emplace(std::move(key), name);
        return name;
    }

    PGconn* _conn;
    std::string _conninfo;
    int _connect_timeout_s;
    bool _in_transaction = false;
    // The repository's statements are a fixed set of constant strings: bounded by them.
    std::unordered_map<std::string, std::string> _prepared;
    std::uint64_t _prepared_serial = 0;
};

}  // namespace

result<std::unique_ptr<sql_connection>> open_postgresql(const std::string& conninfo,
                                                        const open_options& options) {
    const std::string timeout = std::to_string(options.connect_timeout_s);
    // dbname with expand_dbname takes a URL or a conninfo string whole; the timeout is
    // added unless the caller gave one.
    const char* keys[] = {"connect_timeout", "dbname", nullptr};
    const char* values[] = {timeout.c_str(), conninfo.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, 1);
    if (conn == nullptr) {
        return error(errc::no_space, "postgresql: out of memory");
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        std::string_view m = PQerrorMessage(conn);
        if (auto nl = m.find('\n'); nl != std::string_view::npos) {
            m = m.substr(0, nl);
        }
        auto e = error::format(errc::unavailable, 0, "postgresql: cannot connect: {}", m);
        PQfinish(conn);
        return e;
    }
    return std::unique_ptr<sql_connection>(
        std::make_unique<pg_connection>(conn, conninfo, options.connect_timeout_s));
}

}  // namespace shoal::store
