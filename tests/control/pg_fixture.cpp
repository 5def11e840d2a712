#include "pg_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

namespace shoal::test {

namespace {

constexpr const char* bin_dir = "/usr/lib/postgresql/15/bin";

std::string bin(const char* name) { return fmt::format("{}/{}", bin_dir, name); }

// Runs argv as the postgres user (runuser), output appended to log; the exit status.
int run_as_postgres(const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> full = {"runuser", "-u", "postgres", "--"};
    full.insert(full.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        std::vector<char*> argv;
        for (auto& a : full) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A TCP port nobody listens on now (the kernel's choice for port 0).
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof a;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

}  // namespace

std::string pg_unavailable_reason() {
    if (geteuid() != 0) {
        return "needs root (to run PostgreSQL as the postgres user)";
    }
    if (access(bin("initdb").c_str(), X_OK) != 0 || access(bin("pg_ctl").c_str(), X_OK) != 0) {
        return fmt::format("no PostgreSQL 15 in {} (tools/setup installs postgresql)", bin_dir);
    }
    if (getpwnam("postgres") == nullptr) {
        return "no postgres user";
    }
    return {};
}

bool pg_cluster::start() {
    if (auto why = pg_unavailable_reason(); !why.empty()) {
        _error = why;
        return false;
    }
    char templ[] = "/tmp/shoal-pg-XXXXXX";
    if (mkdtemp(templ) == nullptr) {
        _error = "mkdtemp failed";
        return false;
    }
    _dir = templ;
    const passwd* pw = getpwnam("postgres");
    if (chown(_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        _error = "chown of the cluster directory failed";
        return false;
    }
    const std::string log = _dir + "/setup.log";
    // trust: only this test's processes reach the socket; --no-sync: a test cluster.
    if (run_as_postgres({bin("initdb"), "-D", _dir + "/data", "-U", "postgres", "-A", "trust", "-E",
                         "UTF8", "--locale=C", "--no-sync"},
                        log) != 0) {
        _error = "initdb failed; see " + log;
        return false;
    }
    _port = free_port();
    return pg_ctl_start();
}

bool pg_cluster::pg_ctl_start() {
    const std::string options = fmt::format(
        "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
        "-c synchronous_commit=off -c max_connections=50",
        _dir, _port);
    if (run_as_postgres({bin("pg_ctl"), "-D", _dir + "/data", "-l", _dir + "/server.log", "-w",
                         "-t", "60", "-o", options, "start"},
                        _dir + "/setup.log") != 0) {
        _error = "pg_ctl start failed; see " + _dir + "/server.log";
        return false;
    }
    _running = true;
    return true;
}

bool pg_cluster::pg_ctl_stop(const char* mode) {
    if (!_running) {
        return true;
    }
    _running = false;
    return run_as_postgres(
               {bin("pg_ctl"), "-D", _dir + "/data", "-m", mode, "-w", "-t", "60", "stop"},
               _dir + "/setup.log") == 0;
}

std::string pg_cluster::conninfo(const std::string& dbname) const {
    return fmt::format("host={} port={} user=postgres dbname={}", _dir, _port, dbname);
}

std::string pg_cluster::create_database() {
    const std::string name = fmt::format("shoal_test_{}", ++_databases);
    PGconn* conn = PQconnectdb(conninfo().c_str());
    std::string out;
    if (PQstatus(conn) == CONNECTION_OK) {
        // The name is made here from a counter, never from input.
        PGresult* res = PQexec(conn, fmt::format("CREATE DATABASE {}", name).c_str());
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            out = conninfo(name);
        } else {
            _error = PQresultErrorMessage(res);
        }
        PQclear(res);
    } else {
        _error = PQerrorMessage(conn);
    }
    PQfinish(conn);
    return out;
}

bool pg_cluster::restart() {
    if (!pg_ctl_stop("fast")) {
        _error = "pg_ctl stop failed";
        return false;
    }
    return pg_ctl_start();
}

void pg_cluster::stop() {
    if (_dir.empty()) {
        return;
    }
    pg_ctl_stop("immediate");
    std::error_code ec;
    std::filesystem::remove_all(_dir, ec);
    _dir.clear();
}

pg_cluster* shared_pg() {
    static std::mutex mutex;
    static std::unique_ptr<pg_cluster> cluster;
    static bool tried = false;
    std::lock_guard lock(mutex);
    if (!tried) {
        tried = true;
        if (pg_unavailable_reason().empty()) {
            auto c = std::make_unique<pg_cluster>();
            if (c->start()) {
                cluster = std::move(c);
            } else {
                fmt::print(stderr, "PostgreSQL test cluster: {}\n", c->last_error());
            }
        }
    }
    return cluster.get();
}

test_store make_test_store(const std::string& backend, const char* dir_prefix) {
    test_store t;
    if (backend == "sqlite") {
        std::string templ = fmt::format("/tmp/{}-XXXXXX", dir_prefix);
        if (mkdtemp(templ.data()) == nullptr) {
            t.error = fmt::format("mkdtemp {}: {}", templ, std::strerror(errno));
            return t;
        }
        t.dir = templ;
        t.url = "sqlite://" + t.dir + "/shoal.db";
        return t;
    }
    if (t.skip = pg_unavailable_reason(); !t.skip.empty()) {
        return t;
    }
    pg_cluster* pg = shared_pg();
    if (pg == nullptr) {
        t.error = "the PostgreSQL test cluster did not start";
        return t;
    }
    t.url = pg->create_database();
    if (t.url.empty()) {
        t.error = pg->last_error();
    }
    return t;
}

}  // namespace shoal::test
