#include "http/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "rootdir/unique_fd.h"

namespace shoal::http {

std::string_view method_name(method m) noexcept {
    switch (m) {
    case method::get: return "GET";
    case method::head: return "HEAD";
    case method::post: return "POST";
    case method::put: return "PUT";
    case method::patch: return "PATCH";
    case method::del: return "DELETE";
    case method::other: return "OTHER";
    }
    return "OTHER";
}

namespace {

method parse_method(std::string_view m) noexcept {
    if (m == "GET") return method::get;
    if (m == "HEAD") return method::head;
    if (m == "POST") return method::post;
    if (m == "PUT") return method::put;
    if (m == "PATCH") return method::patch;
    if (m == "DELETE") return method::del;
    return method::other;
}

}  // namespace

std::optional<std::string_view> request::query(const char* name) const noexcept {
    return _source.lookup ? _source.lookup(false, name) : std::nullopt;
}

std::optional<std::string_view> request::header(const char* name) const noexcept {
    return _source.lookup ? _source.lookup(true, name) : std::nullopt;
}

response response::text(unsigned status, std::string body, std::string content_type) {
    response r;
    r.status = status;
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    return r;
}

response response::json(unsigned status, const nlohmann::json& value) {
    return text(status, value.dump(), "application/json");
}

response response::error(unsigned status, std::string_view message) {
    return json(status, nlohmann::json{{"error", message}});
}

response response::from_file(bootsvc::opened_file f, std::string content_type) {
    response r;
    r.content_type = std::move(content_type);
    r.file = std::move(f);
    return r;
}

void router::add(method m, std::string path, handler h) {
    _routes.push_back({m, std::move(path), false, std::move(h)});
}

void router::add_prefix(method m, std::string prefix, handler h) {
    _routes.push_back({m, std::move(prefix), true, std::move(h)});
}

response router::dispatch(const request& r) const {
    method want = r.verb() == method::head ? method::get : r.verb();
    const route* best = nullptr;
    std::string allow;
    for (int pass = 0; pass < 2 && best == nullptr; ++pass) {
        bool prefixes = pass == 1;
        std::size_t best_size = 0;
        for (const auto& rt : _routes) {
            if (rt.prefix != prefixes) {
                continue;
            }
            bool match = prefixes ? r.path().starts_with(rt.path) : r.path() == rt.path;
            if (!match) {
                continue;
            }
            if (rt.verb != want) {
                if (!allow.empty()) {
                    allow += ", ";
                }
                allow += method_name(rt.verb);
                continue;
            }
            if (best == nullptr || rt.path.size() > best_size) {
                best = &rt;
                best_size = rt.path.size();
            }
        }
    }
    if (best != nullptr) {
        return best->fn(r);
    }
    if (!allow.empty()) {
        auto out = response::error(
            405, fmt::format("{} is not allowed on {}", method_name(r.verb()), r.path()));
        out.headers.emplace_back("Allow", allow);
        return out;
    }
    return response::error(404, fmt::format("nothing at {}", r.path()));
}

std::string_view content_type_for(std::string_view name) noexcept {
    auto dot = name.rfind('.');
    std::string_view ext =
        dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
    struct entry {
        std::string_view ext;
        std::string_view type;
    };
    static constexpr entry types[] = {
        {"html", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"ipxe", "text/plain; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"ico", "image/x-icon"},
    };
    for (const auto& t : types) {
        if (t.ext == ext) {
            return t.type;
        }
    }
    return "application/octet-stream";
}

handler static_files(std::shared_ptr<const bootsvc::root_dir> root, std::string url_prefix) {
    return [root = std::move(root), prefix = std::move(url_prefix)](const request& r) {
        std::string_view path = r.path();
        if (path.starts_with(prefix)) {
            path.remove_prefix(prefix.size());
        }
        // A directory's URL (the prefix itself, or any path ending in '/') is its
        // index.html, as every web server does: the console is opened at /ui/.
        std::string name(path);
        if (name.empty() || name.ends_with('/')) {
            name += "index.html";
        }
        auto f = root->open_file(name);
        if (!f) {
            if (f.err().code() == errc::not_found) {
                return response::error(404, fmt::format("no file {}", r.path()));
            }
            log::warn("http: {} refused {}: {}", r.remote_address(), r.path(), f.err().describe());
            return response::error(403, "forbidden");
        }
        return response::from_file(std::move(*f), std::string(content_type_for(name)));
    };
}

// ---- libmicrohttpd ----------------------------------------------------------------------

class server::impl {
public:
    impl(server_config config, router routes)
        : _config(std::move(config)), _routes(std::move(routes)) {}
    ~impl() { stop(); }

    status start();
    void stop() noexcept {
        if (_daemon != nullptr) {
            MHD_stop_daemon(_daemon);
            _daemon = nullptr;
        }
    }
    std::uint16_t port() const noexcept { return _port; }

private:
    // What one connection accumulates across libmicrohttpd's calls for one request.
    struct connection_state {
        std::string body;
        std::size_t body_size_max = 0;
        bool too_large = false;
    };

    static MHD_Result on_access(void* cls, MHD_Connection* c, const char* url, const char* verb,
                                const char* version, const char* upload_data,
                                std::size_t* upload_data_size, void** con_cls);
    static void on_completed(void* cls, MHD_Connection* c, void** con_cls,
                             MHD_RequestTerminationCode code);
    static void on_log(void* cls, const char* fmt, va_list ap);
    MHD_Result answer(MHD_Connection* c, const char* url, method verb, std::string_view body);

    server_config _config;
    router _routes;
    MHD_Daemon* _daemon = nullptr;
    bootsvc::unique_fd _listen;
    std::uint16_t _port = 0;
};

void server::impl::on_log(void*, const char* fmt, va_list ap) {
    char line[512];
    std::vsnprintf(line, sizeof line, fmt, ap);
    std::size_t n = std::strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    log::warn("http: {}", line);
}

void server::impl::on_completed(void*, MHD_Connection*, void** con_cls,
                                MHD_RequestTerminationCode) {
    delete static_cast<connection_state*>(*con_cls);
    *con_cls = nullptr;
}

MHD_Result server::impl::on_access(void* cls, MHD_Connection* c, const char* url, const char* verb,
                                   const char*, const char* upload_data,
                                   std::size_t* upload_data_size, void** con_cls) {
    auto* self = static_cast<impl*>(cls);
    auto* state = static_cast<connection_state*>(*con_cls);
    if (state == nullptr) {
        // First call: headers only. Refuse a declared body over the limit before reading it.
        state = new connection_state;
        *con_cls = state;
        state->body_size_max = self->_config.body_size_max;
        for (const auto& [prefix, size_max] : self->_config.body_size_max_by_prefix) {
            if (std::string_view(url).starts_with(prefix)) {
                state->body_size_max = size_max;
                break;
            }
        }
        const char* length =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length != nullptr && std::strtoull(length, nullptr, 10) > state->body_size_max) {
            state->too_large = true;
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!state->too_large) {
            if (state->body.size() + *upload_data_size > state->body_size_max) {
                state->too_large = true;
                state->body.clear();
            } else {
                state->body.append(upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    method m = parse_method(verb);
    if (state->too_large) {
        auto r = response::error(
            413, fmt::format("request body over {} bytes", state->body_size_max));
        MHD_Response* out =
            MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(out, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
        MHD_add_response_header(out, MHD_HTTP_HEADER_CONNECTION, "close");
        MHD_Result ret = MHD_queue_response(c, 413, out);
        MHD_destroy_response(out);
        log::info("http: {} {} body too large", verb, url);
        return ret;
    }
    return self->answer(c, url, m, state->body);
}

MHD_Result server::impl::answer(MHD_Connection* c, const char* url, method verb,
                                std::string_view body) {
    char remote[INET6_ADDRSTRLEN] = "?";
    if (const auto* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
        const sockaddr* sa = info->client_addr;
        if (sa != nullptr && sa->sa_family == AF_INET) {
            ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, remote,
                        sizeof remote);
        } else if (sa != nullptr && sa->sa_family == AF_INET6) {
            ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, remote,
                        sizeof remote);
        }
    }
    request::source src;
    src.lookup = [c](bool is_header, const char* name) -> std::optional<std::string_view> {
        const char* v = MHD_lookup_connection_value(
            c, is_header ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND, name);
        if (v == nullptr) {
            return std::nullopt;
        }
        return std::string_view(v);
    };
    request req(verb, url, body, remote, std::move(src));
    response r = _routes.dispatch(req);

    MHD_Response* out = nullptr;
    std::uint64_t size = 0;
    if (r.file) {
        size = r.file->identity.size_bytes;
        // libmicrohttpd owns the descriptor from here and closes it; it sends with sendfile.
        out = MHD_create_response_from_fd64(size, r.file->fd.release());
    } else {
        size = r.body.size();
        out = MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
    }
    if (out == nullptr) {
        log::warn("http: {} {} {}: cannot build the response", remote, method_name(verb), url);
        return MHD_NO;
    }
    MHD_add_response_header(out, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
    for (const auto& [name, value] : r.headers) {
        MHD_add_response_header(out, name.c_str(), value.c_str());
    }
    MHD_Result ret = MHD_queue_response(c, r.status, out);
    MHD_destroy_response(out);
    if (spdlog::should_log(spdlog::level::debug)) {
        const auto* q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mac");
        log::debug("http: {} {} {}{}{} -> {} ({} bytes)", remote, method_name(verb), url,
                   q ? "?mac=" : "", q ? q : "", r.status, size);
    }
    return ret;
}

status server::impl::start() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(_config.port);
    if (::inet_pton(AF_INET, _config.address.c_str(), &addr.sin_addr) != 1) {
        return error::format(errc::invalid_argument, 0,
                             "http: listen address '{}' is not an IPv4 address", _config.address);
    }
    // Our own listening socket, so that a taken port is reported with its errno.
    _listen.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int on = 1;
    ::setsockopt(_listen.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(_listen.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(_listen.get(), 512) != 0) {
        return error::format(errc::io, errno,
                             "http: cannot listen on {}:{}/tcp (is another web server running?)",
                             _config.address, _config.port);
    }
    socklen_t len = sizeof addr;
    ::getsockname(_listen.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    _port = ntohs(addr.sin_port);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    _daemon = MHD_start_daemon(
        flags, _port, nullptr, nullptr, &on_access, this,
        // The logger first, so that libmicrohttpd's own messages go through spdlog too.
        MHD_OPTION_EXTERNAL_LOGGER, &on_log, this, MHD_OPTION_LISTEN_SOCKET,
        static_cast<MHD_socket>(_listen.release()), MHD_OPTION_THREAD_POOL_SIZE,
        static_cast<unsigned>(std::max(1u, _config.threads)), MHD_OPTION_CONNECTION_LIMIT,
        _config.connections_max, MHD_OPTION_CONNECTION_TIMEOUT, _config.connection_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, &on_completed, this, MHD_OPTION_END);
    if (_daemon == nullptr) {
        return error(errc::io, "http: libmicrohttpd did not start (see the warning above)");
    }
    return ok();
}

result<std::unique_ptr<server>> server::start(const server_config& config, router routes) {
    auto p = std::make_unique<impl>(config, std::move(routes));
    SHOAL_RETURN_IF_ERROR(p->start());
    return std::unique_ptr<server>(new server(std::move(p)));
}

server::server(std::unique_ptr<impl> p) noexcept : _impl(std::move(p)) {}
server::~server() = default;
void server::stop() noexcept { _impl->stop(); }
std::uint16_t server::port() const noexcept { return _impl->port(); }

}  // namespace shoal::http
