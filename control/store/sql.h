// The little the repository needs from a database: run one statement with bound
// parameters, get rows of text back. SQLite and PostgreSQL each implement it; the
// repository's SQL is written once, with $1..$N placeholders (SQLite's ?NNN in disguise).
// Internal to control/store.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"

namespace shoal::store {

// A bound parameter: NULL, an integer, a real or text. Never spliced into SQL text.
using sql_value = std::variant<std::monostate, std::int64_t, double, std::string>;

// A column as text (integers and reals in their decimal form), nullopt for NULL.
using sql_row = std::vector<std::optional<std::string>>;

enum class sql_dialect : std::uint8_t { sqlite, postgresql };

// What kind of statement this is, for the retry rule: a read can be run again on a new
// connection when the old one broke; a write outside a transaction only when it surely
// never reached the server.
enum class sql_kind : std::uint8_t { read, write };

class sql_connection {
public:
    virtual ~sql_connection() = default;
    virtual sql_dialect dialect() const noexcept = 0;

    // Runs one statement. Errors: conflict (unique), invalid_argument (foreign key: a
    // referenced record is missing, or a record is still referenced), unavailable
    // (connection lost), io (anything else). The context holds the database's message.
    virtual result<std::vector<sql_row>> exec(std::string_view sql,
                                              const std::vector<sql_value>& params,
                                              sql_kind kind) = 0;
    // Runs several statements without parameters (migrations, BEGIN, COMMIT).
    virtual status exec_script(std::string_view sql) = 0;
    // Whether a transaction is open (so a lost connection cannot be retried).
    virtual bool in_transaction() const noexcept = 0;
    virtual status begin() = 0;
    virtual status commit() = 0;
    virtual void rollback() noexcept = 0;
};

struct open_options;
class repository;

result<std::unique_ptr<sql_connection>> open_sqlite(const std::string& path,
                                                    const open_options& options);
result<std::unique_ptr<sql_connection>> open_postgresql(const std::string& conninfo,
                                                        const open_options& options);

// The repository over a connection, migrated (sql_repository.cpp).
result<std::unique_ptr<repository>> make_sql_repository(std::unique_ptr<sql_connection> db,
                                                        const open_options& options);

}  // namespace shoal::store
