// The project's one HTTP server: a thin C++ face on GNU libmicrohttpd (docs/decisions.md).
// Boot scripts, kernels and initrds are served through it now; the control plane's REST API
// and web console will be. A router picks a handler by method and path; handlers get the
// query, headers and a size-limited body, and answer with text, JSON or a file (sent with
// sendfile, never read into memory). libmicrohttpd runs an epoll loop on a small pool of
// threads, so hundreds of PCs downloading a kernel at once cost no thread each.
// Handlers run on the pool's threads, several at once: they must be thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "rootdir/root_dir.h"

namespace shoal::http {

enum class method : std::uint8_t { get, head, post, put, patch, del, other };

std::string_view method_name(method m) noexcept;

class request {
public:
    method verb() const noexcept { return _verb; }
    // The path, percent-decoded, without the query.
    std::string_view path() const noexcept { return _path; }
    // A query argument, percent-decoded; the first if repeated. nullopt if absent.
    std::optional<std::string_view> query(const char* name) const noexcept;
    std::optional<std::string_view> header(const char* name) const noexcept;
    std::string_view body() const noexcept { return _body; }
    // The client's IP address as text.
    std::string_view remote_address() const noexcept { return _remote; }

    // For the server and for tests of handlers: lookups go through `lookup` when set.
    struct source {
        std::function<std::optional<std::string_view>(bool is_header, const char* name)> lookup;
    };
    request(method verb, std::string_view path, std::string_view body, std::string_view remote,
            source src)
        : _verb(verb), _path(path), _body(body), _remote(remote), _source(std::move(src)) {}

private:
    method _verb;
    std::string_view _path;
    std::string_view _body;
    std::string_view _remote;
    source _source;
};

struct response {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // When set, the body is this file, sent from its descriptor (which the server closes).
    std::optional<bootsvc::opened_file> file;

    static response text(unsigned status, std::string body,
                         std::string content_type = "text/plain; charset=utf-8");
    static response json(unsigned status, const nlohmann::json& value);
    // {"error": message} with the status, for API clients and people alike.
    static response error(unsigned status, std::string_view message);
    static response from_file(bootsvc::opened_file f, std::string content_type);
};

using handler = std::function<response(const request&)>;

class router {
public:
    // A handler for one exact path. GET handlers answer HEAD too.
    void add(method m, std::string path, handler h);
    // A handler for every path under `prefix` (which should end in '/'); the longest
    // matching prefix wins, exact paths before prefixes.
    void add_prefix(method m, std::string prefix, handler h);

    // 404 when no path matches, 405 (with Allow) when the path does but the method not.
    response dispatch(const request& r) const;

private:
    struct route {
        method verb;
        std::string path;
        bool prefix;
        handler fn;
    };
    std::vector<route> _routes;
};

// Serves the files beneath `root` for GET and HEAD: `url_prefix` + name maps to root/name,
// with root_dir's confinement (no `..`, no symlink out). 404 for missing files, 403 for
// names that would leave the root. A path ending in '/' (the prefix itself included) is
// that directory's index.html.
handler static_files(std::shared_ptr<const bootsvc::root_dir> root, std::string url_prefix);

// The Content-Type for a file name, by its extension.
std::string_view content_type_for(std::string_view name) noexcept;

struct server_config {
    std::string address = "0.0.0.0";
    std::uint16_t port = 80;               // 0: any free port (tests)
    unsigned threads = 4;                  // libmicrohttpd's thread pool
    unsigned connections_max = 1024;       // more are refused at accept
    unsigned connection_timeout_s = 60;    // idle connections are closed after this
    std::size_t body_size_max = 1u << 20;  // larger request bodies get 413
    // Paths under these prefixes may send bodies up to the size given instead (image chunk
    // uploads: one chunk is up to 16 MiB), so the JSON API keeps its small bound.
    std::vector<std::pair<std::string, std::size_t>> body_size_max_by_prefix;
};

class server {
public:
    // Binds (a taken port fails here with the errno) and starts serving at once.
    static result<std::unique_ptr<server>> start(const server_config& config, router routes);
    ~server();  // stops
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    void stop() noexcept;
    std::uint16_t port() const noexcept;

    class impl;

private:
    explicit server(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> _impl;
};

}  // namespace shoal::http
