// A private PostgreSQL 15 cluster for a test program: initdb and pg_ctl (run as the
// postgres user) in a fresh temporary directory, listening on a unix socket there and on
// a free port on 127.0.0.1; stopped and removed at the end. It never touches the system's
// PostgreSQL service.
//
//   auto* pg = shoal::test::shared_pg();            // nullptr when it cannot run here
//   if (pg == nullptr) GTEST_SKIP() << shoal::test::pg_unavailable_reason();
//   std::string conninfo = pg->create_database();  // a fresh, empty database
//   pg->restart();                                  // e.g. to test reconnecting
#pragma once

#include <string>

namespace shoal::test {

class pg_cluster {
public:
    pg_cluster() = default;
    ~pg_cluster() { stop(); }
    pg_cluster(const pg_cluster&) = delete;
    pg_cluster& operator=(const pg_cluster&) = delete;

    // initdb and start; false (and last_error()) if either fails.
    bool start();
    // libpq conninfo for a database of this cluster, over the unix socket.
    std::string conninfo(const std::string& dbname = "postgres") const;
    // Creates a new empty database; its conninfo, or "" (and last_error()) on failure.
    std::string create_database();
    // Stops the server (fast: connections are cut) and starts it again on the same port.
    bool restart();
    // Stops the server (if running) and removes the directory.
    void stop();

    int port() const { return _port; }
    const std::string& dir() const { return _dir; }
    const std::string& last_error() const { return _error; }

private:
    bool pg_ctl_start();
    bool pg_ctl_stop(const char* mode);

    std::string _dir;  // owned by postgres: data/, the socket, the log
    int _port = 0;
    bool _running = false;
    int _databases = 0;
    std::string _error;
};

// Why a cluster cannot run here ("" if it can): not root, or no PostgreSQL 15 binaries.
std::string pg_unavailable_reason();

// The test program's one cluster: started on first use, stopped at exit. nullptr when
// pg_unavailable_reason() is not empty or the start failed (the reason says which).
pg_cluster* shared_pg();

// A fresh, empty store for one backend ("sqlite" or "postgresql"): a SQLite file in a new
// temporary directory (`dir`, which the caller removes) or a new database on shared_pg().
// `skip` says why PostgreSQL cannot run here; `error` why the set-up failed.
struct test_store {
    std::string url;
    std::string dir;
    std::string skip;
    std::string error;
};
test_store make_test_store(const std::string& backend, const char* dir_prefix);

}  // namespace shoal::test
