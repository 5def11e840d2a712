#include "agent/client_api.h"

#include <chrono>

#include <curl/curl.h>
#include <fmt/format.h>

#include "common/clock.h"
#include "common/log.h"

namespace shoal::agent {

using nlohmann::json;

namespace {

// Replies bigger than this are cut: /client/* answers are a few kB.
constexpr std::size_t reply_bytes_max = 1 << 20;

std::size_t append(char* data, std::size_t size, std::size_t count, void* out) {
    auto* s = static_cast<std::string*>(out);
    std::size_t n = size * count;
    if (s->size() + n > reply_bytes_max) {
        return 0;  // curl fails the transfer
    }
    s->append(data, n);
    return n;
}

result<json> parse_reply(const http_reply& r, std::string_view what) {
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return error::format(errc::malformed, 0, "{}: shoald's answer is not a JSON object", what);
    }
    return j;
}

}  // namespace

client_api::client_api(client_config c) : _config(std::move(c)) {
    while (!_config.server.empty() && _config.server.back() == '/') {
        _config.server.pop_back();
    }
}

result<http_reply> client_api::request_once(const std::string& path,
                                            const std::optional<std::string>& body) const {
    CURL* c = curl_easy_init();
    if (c == nullptr) {
        return error(errc::io, "curl_easy_init failed");
    }
    http_reply reply;
    curl_slist* headers = nullptr;
    if (!_config.key.empty()) {
        headers = curl_slist_append(headers, ("X-Shoal-Task-Key: " + _config.key).c_str());
    }
    if (body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    std::string url = _config.server + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(_config.request_timeout_ms));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        return error::format(errc::peer_gone, 0, "{:.80}: {}", url, curl_easy_strerror(rc));
    }
    return reply;
}

result<http_reply> client_api::request(const std::string& path,
                                       const std::optional<std::string>& body) {
    auto deadline = time::deadline::after_ns(_config.server_wait_ns);
    _attempts = 0;
    while (true) {
        ++_attempts;
        auto r = request_once(path, body);
        if (r && r->status < 500) {
            return r;
        }
        if (deadline.expired()) {
            if (r) {
                return error::format(errc::peer_gone, 0, "{}: HTTP {} {:.80}", path, r->status,
                                     r->body);
            }
            return r.err();
        }
        log::warn("shoald: {} (try {}); trying again", r ? fmt::format("HTTP {}", r->status)
                                                         : r.err().describe(),
                  _attempts);
        time::sleep_for_ns(_config.retry_pause_ns);
    }
}

result<json> client_api::register_host(const std::string& mac, const std::string& name,
                                       const json& inventory) {
    json doc = {{"mac", mac}, {"inventory", inventory}};
    if (!name.empty()) {
        doc["name"] = name;
    }
    auto r = request("/client/register", doc.dump());
    if (!r) {
        return r.err();
    }
    if (r->status / 100 != 2) {
        return error::format(errc::invalid_argument, 0, "registration refused: HTTP {} {:.120}",
                             r->status, r->body);
    }
    return parse_reply(*r, "/client/register");
}

result<json> client_api::task() {
    auto r = request("/client/task", std::nullopt);
    if (!r) {
        return r.err();
    }
    if (r->status == 403 || r->status == 401) {
        return error::format(errc::denied, 0, "shoald refused the task key: {:.150}", r->body);
    }
    if (r->status != 200) {
        return error::format(errc::invalid_argument, 0, "/client/task: HTTP {} {:.120}",
                             r->status, r->body);
    }
    return parse_reply(*r, "/client/task");
}

result<json> client_api::progress(const json& doc) {
    auto r = request("/client/progress", doc.dump());
    if (!r) {
        return r.err();
    }
    if (r->status == 403 || r->status == 409) {
        return error::format(errc::cancelled, 0, "shoald refused the report: {:.150}", r->body);
    }
    if (r->status / 100 != 2) {
        return error::format(errc::invalid_argument, 0, "/client/progress: HTTP {} {:.120}",
                             r->status, r->body);
    }
    return parse_reply(*r, "/client/progress");
}

progress_reporter::progress_reporter(client_config c) : _api([&] {
    // A report is worth little once late: a short wait, the next one comes anyway.
    c.server_wait_ns = 0;
    return c;
}()) {
    _thread = std::thread([this] { loop(); });
}

progress_reporter::~progress_reporter() {
    {
        std::lock_guard l(_mutex);
        _stop = true;
    }
    _cv.notify_all();
    _thread.join();
}

void progress_reporter::update(json doc) {
    std::lock_guard l(_mutex);
    _latest = std::move(doc);
    _fresh = true;
}

void progress_reporter::loop() {
    std::unique_lock l(_mutex);
    while (!_stop) {
        _cv.wait_for(l, std::chrono::seconds(1));
        if (!_fresh || _stop) {
            continue;
        }
        json doc = _latest;
        _fresh = false;
        l.unlock();
        auto r = _api.progress(doc);
        if (!r && r.err().code() == errc::cancelled) {
            log::warn("{}", r.err().describe());
            _cancelled = true;
        }
        l.lock();
    }
}

}  // namespace shoal::agent
