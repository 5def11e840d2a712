// open_repository: which backend a URL names.
#include <string>

#include "store/repository.h"
#include "store/sql.h"

namespace shoal::store {

result<std::unique_ptr<repository>> open_repository(std::string_view url,
                                                    const open_options& options) {
    if (url.empty()) {
        return error(errc::invalid_argument,
                     "database: empty; give sqlite:///path/to/shoal.db or postgresql://...");
    }
    result<std::unique_ptr<sql_connection>> db = error(errc::invalid_argument, "database");
    if (url.starts_with("postgresql://") || url.starts_with("postgres://") ||
        (url.find('=') != std::string_view::npos && !url.starts_with("sqlite:"))) {
        db = open_postgresql(std::string(url), options);
    } else {
        std::string_view path = url;
        if (path.starts_with("sqlite:")) {
            path.remove_prefix(7);
            if (path.starts_with("//")) {
                path.remove_prefix(2);  // sqlite:///abs/path -> /abs/path
            }
        }
        if (path.empty()) {
            return error(errc::invalid_argument,
                         "database: an SQLite URL needs a path: sqlite:///var/lib/shoal/shoal.db");
        }
        db = open_sqlite(std::string(path), options);
    }
    if (!db) {
        return db.err();
    }
    return make_sql_repository(std::move(*db), options);
}

}  // namespace shoal::store
