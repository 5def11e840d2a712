#include "agent/http_store.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

namespace shoal::agent {

namespace {

constexpr std::size_t error_body_size_max = 4096;        // kept of a refusal's body
constexpr std::size_t manifest_download_size_max = 256u << 20;
constexpr unsigned handles_kept_max = 16;                 // idle curl handles pooled
constexpr unsigned cancel_poll_ms = 50;                   // pauses are sliced this fine

enum class verb { get, head, put };

std::once_flag curl_once;

struct sink_buffer {
    std::vector<std::byte>* out = nullptr;
    std::size_t size_max = 0;
    bool cut_quietly = false;  // an error body: keep its start, drop the rest
    bool overflow = false;
};

extern "C" std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* b = static_cast<sink_buffer*>(user);
    const std::size_t n = size * count;
    const std::size_t have = b->out->size();
    std::size_t keep = n;
    if (have + n > b->size_max) {
        if (!b->cut_quietly) {
            b->overflow = true;
            return 0;  // aborts the transfer: more than the reference says
        }
        keep = b->size_max - have;
    }
    const auto* p = reinterpret_cast<const std::byte*>(data);
    b->out->insert(b->out->end(), p, p + keep);
    return n;
}

// The server's {"error": "..."} message, else the body's start.
std::string server_message(const std::string& body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
        return j["error"].get<std::string>();
    }
    std::string s = body.substr(0, 200);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
        s.pop_back();
    }
    return s;
}

}  // namespace

struct http_store::state {
    http_store_config config;
    std::string image_url;  // base_url + "/store/images/" + image
    curl_slist* headers = nullptr;
    mutable std::mutex mu;
    mutable std::vector<CURL*> idle;
    mutable std::atomic<std::uint64_t> requests{0};
    mutable std::atomic<std::uint64_t> sent{0};
    mutable std::atomic<std::uint64_t> received{0};

    ~state() {
        for (CURL* h : idle) {
            curl_easy_cleanup(h);
        }
        curl_slist_free_all(headers);
    }

    bool cancelled() const noexcept {
        return config.cancel != nullptr && config.cancel->load(std::memory_order_relaxed);
    }

    CURL* take() const {
        {
            std::lock_guard lock(mu);
            if (!idle.empty()) {
                CURL* h = idle.back();
                idle.pop_back();
                return h;
            }
        }
        return curl_easy_init();
    }
    void give_back(CURL* h) const {
        std::lock_guard lock(mu);
        if (idle.size() < handles_kept_max) {
            idle.push_back(h);
            return;
        }
        curl_easy_cleanup(h);
    }

    // Sleeps `ms`, waking early when cancelled.
    void pause(unsigned ms) const {
        for (unsigned slept = 0; slept < ms && !cancelled(); slept += cancel_poll_ms) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min(cancel_poll_ms, ms - slept)));
        }
    }

    struct reply {
        long status = 0;
        std::string text;  // the body of a non-2xx answer (cut)
    };

    // One attempt. A transport failure is an error (io, with curl's words); an HTTP answer
    // of any status is a reply.
    result<reply> attempt(verb v, const std::string& url, std::span<const std::byte> upload,
                          std::vector<std::byte>* out, std::size_t out_size_max) const {
        CURL* h = take();
        if (h == nullptr) {
            return error(errc::io, "curl_easy_init failed");
        }
        curl_easy_reset(h);
        reply rep;
        if (out != nullptr) {
            out->clear();
        }
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config.connect_timeout_ms));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(config.request_timeout_ms));
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        // The body goes to `out`; an answer without one (or a refusal) to a small scratch
        // buffer, for the server's message.
        std::vector<std::byte> scratch;
        sink_buffer any_sink{out != nullptr ? out : &scratch,
                             out != nullptr ? out_size_max : error_body_size_max, out == nullptr,
                             false};
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &any_sink);
        switch (v) {
        case verb::get:
            curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
            break;
        case verb::head:
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
            break;
        case verb::put:
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, upload.data());
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(upload.size()));
            break;
        }
        requests.fetch_add(1, std::memory_order_relaxed);
        const CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        give_back(h);
        if (v == verb::put) {
            sent.fetch_add(upload.size(), std::memory_order_relaxed);
        }
        received.fetch_add(any_sink.out->size(), std::memory_order_relaxed);
        if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && any_sink.overflow)) {
            return error::format(errc::io, 0, "{}: {}", url, curl_easy_strerror(rc));
        }
        rep.status = status;
        if (any_sink.overflow && status / 100 == 2) {
            return error::format(errc::corrupt, 0, "{}: answer larger than {} bytes", url,
                                 out_size_max);
        }
        if (status / 100 != 2) {
            const auto* p = reinterpret_cast<const char*>(any_sink.out->data());
            rep.text.assign(p, std::min(any_sink.out->size(), error_body_size_max));
            if (out != nullptr) {
                out->clear();
            }
        }
        return rep;
    }

    // Retries transport errors and 5xx (but 507) up to attempts_max; maps the final answer
    // to a status. `what` starts error messages.
    result<reply> request(verb v, const std::string& url, std::span<const std::byte> upload,
                          std::vector<std::byte>* out, std::size_t out_size_max) const {
        unsigned pause_ms = config.retry_pause_ms;
        std::string last;
        for (unsigned n = 0; n < std::max(1u, config.attempts_max); ++n) {
            if (cancelled()) {
                return error::format(errc::cancelled, 0, "{}: cancelled", url);
            }
            if (n > 0) {
                pause(pause_ms);
                pause_ms = std::min(pause_ms * 2, config.retry_pause_max_ms);
                if (cancelled()) {
                    return error::format(errc::cancelled, 0, "{}: cancelled", url);
                }
            }
            auto r = attempt(v, url, upload, out, out_size_max);
            if (!r) {
                if (r.err().code() != errc::io) {
                    return r.err();
                }
                last = std::string(r.err().context());
                continue;
            }
            if (r->status >= 500 && r->status != 507) {
                last = fmt::format("{}: HTTP {} {}", url, r->status, server_message(r->text));
                continue;
            }
            return r;
        }
        return error::format(errc::peer_gone, 0, "{} (after {} attempts; is shoald up and reachable?)",
                             last, std::max(1u, config.attempts_max));
    }

    // A non-2xx reply as an error.
    static error refusal(const std::string& url, const reply& r) {
        const std::string msg = server_message(r.text);
        errc code = errc::invalid_argument;
        switch (r.status) {
        case 401:
        case 403: code = errc::denied; break;
        case 404: code = errc::not_found; break;
        case 409: code = errc::conflict; break;
        case 413: code = errc::invalid_argument; break;
        case 507: code = errc::no_space; break;
        default: break;
        }
        return error::format(code, 0, "{}: HTTP {}: {}", url, r.status, msg);
    }

    std::string chunk_url(const image::sha256_digest& d) const {
        return image_url + "/chunks/" + image::to_hex(d);
    }
};

http_store::http_store(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
http_store::~http_store() = default;

result<std::unique_ptr<http_store>> http_store::open(http_store_config config) {
    if (!config.base_url.starts_with("http://") && !config.base_url.starts_with("https://")) {
        return error::format(errc::invalid_argument, 0,
                             "server URL \"{}\" must start with http:// or https://",
                             config.base_url);
    }
    while (config.base_url.ends_with('/')) {
        config.base_url.pop_back();
    }
    SHOAL_RETURN_IF_ERROR(image::check_image_name(config.image));
    for (const std::string* v : {&config.task_key, &config.token}) {
        for (char c : *v) {
            if (c <= ' ' || c == 0x7f) {
                return error(errc::invalid_argument,
                             "the task key or token holds a space or control character");
            }
        }
    }
    std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    auto s = std::make_unique<state>();
    s->image_url = config.base_url + "/store/images/" + config.image;
    // libcurl sends Expect: 100-continue for large bodies, which costs a round trip per
    // chunk; the server answers a refused upload after reading the body anyway.
    s->headers = curl_slist_append(s->headers, "Expect:");
    s->headers = curl_slist_append(s->headers, "Content-Type: application/octet-stream");
    if (!config.task_key.empty()) {
        s->headers = curl_slist_append(s->headers, ("X-Shoal-Task-Key: " + config.task_key).c_str());
    }
    if (!config.token.empty()) {
        s->headers =
            curl_slist_append(s->headers, ("Authorization: Bearer " + config.token).c_str());
    }
    s->config = std::move(config);
    return std::unique_ptr<http_store>(new http_store(std::move(s)));
}

std::string http_store::location() const { return _s->image_url; }

std::string http_store::chunk_name(const image::sha256_digest& stored_sha256) const {
    return _s->chunk_url(stored_sha256);
}

bool http_store::has_chunk(const image::sha256_digest& stored_sha256) const noexcept {
    try {
        auto r = _s->request(verb::head, _s->chunk_url(stored_sha256), {}, nullptr, 0);
        return r && r->status / 100 == 2;
    } catch (...) {
        return false;
    }
}

result<image::manifest> http_store::load(std::string_view name) const {
    if (name != _s->config.image) {
        return error::format(errc::invalid_argument, 0,
                             "{}: asked for image {}, this store is opened for {}", location(),
                             name, _s->config.image);
    }
    const std::string url = _s->image_url + "/manifest";
    std::vector<std::byte> body;
    auto r = _s->request(verb::get, url, {}, &body, manifest_download_size_max);
    if (!r) {
        return r.err();
    }
    if (r->status / 100 != 2) {
        return state::refusal(url, *r);
    }
    return image::decode_manifest(body, url);
}

status http_store::read_chunk(const image::chunk_ref& ref, std::vector<std::byte>& out) const {
    const std::string url = _s->chunk_url(ref.stored_sha256);
    // A frame damaged on the way is fetched once more; twice wrong is the server's copy.
    constexpr int fetches_max = 2;
    for (int n = 0; n < fetches_max; ++n) {
        out.reserve(ref.stored_size);
        auto r = _s->request(verb::get, url, {}, &out, ref.stored_size);
        if (!r) {
            if (r.err().code() == errc::corrupt) {
                continue;  // longer than the reference says
            }
            return r.err();
        }
        if (r->status / 100 != 2) {
            return state::refusal(url, *r);
        }
        if (out.size() == ref.stored_size && image::sha256_of(out) == ref.stored_sha256) {
            return ok();
        }
    }
    out.clear();
    return error::format(errc::corrupt, 0,
                         "chunk {}: the server's bytes do not match their SHA-256 or size {}; "
                         "run shoal image verify on the server",
                         url, ref.stored_size);
}

status http_store::put_chunk(const image::sha256_digest& stored_sha256,
                             std::span<const std::byte> frame) {
    if (has_chunk(stored_sha256)) {
        return ok();
    }
    const std::string url = _s->chunk_url(stored_sha256);
    auto r = _s->request(verb::put, url, frame, nullptr, 0);
    if (!r) {
        return r.err();
    }
    if (r->status / 100 != 2) {
        return state::refusal(url, *r);
    }
    return ok();
}

status http_store::publish(const image::manifest& m) {
    if (m.name != _s->config.image) {
        return error::format(errc::invalid_argument, 0,
                             "{}: publishing image {}, this store is opened for {}", location(),
                             m.name, _s->config.image);
    }
    auto bytes = image::encode_manifest(m);
    if (!bytes) {
        return bytes.err();
    }
    const std::string url = _s->image_url + "/manifest";
    auto r = _s->request(verb::put, url, *bytes, nullptr, 0);
    if (!r) {
        return r.err();
    }
    if (r->status / 100 != 2) {
        return state::refusal(url, *r);
    }
    return ok();
}

std::uint64_t http_store::requests() const noexcept { return _s->requests.load(); }
std::uint64_t http_store::bytes_sent() const noexcept { return _s->sent.load(); }
std::uint64_t http_store::bytes_received() const noexcept { return _s->received.load(); }

}  // namespace shoal::agent
