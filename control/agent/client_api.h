// The agent's side of shoald's /client/* endpoints (docs/agent.md, "Server side"), over
// libcurl. Every call is bounded: 30 s per request, and while shoald cannot be reached
// (no connection, a timeout, a 5xx) the call is tried again every retry_pause until
// server_wait has passed, then fails with errc::peer_gone. A 4xx answer is final at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace shoal::agent {

struct http_reply {
    long status = 0;
    std::string body;
};

struct client_config {
    std::string server;  // http://10.77.0.1[:port], no trailing slash
    std::string key;     // X-Shoal-Task-Key; empty for registration
    std::int64_t server_wait_ns = 300'000'000'000;  // give up on an unreachable shoald
    std::int64_t retry_pause_ns = 2'000'000'000;
    std::int64_t request_timeout_ms = 30'000;
};

class client_api {
public:
    explicit client_api(client_config c);

    // One request, no retry; body set means POST (JSON). Transport errors are peer_gone.
    result<http_reply> request_once(const std::string& path,
                                    const std::optional<std::string>& body) const;
    // request_once again while shoald is unreachable or answers 5xx, within server_wait.
    // attempts() then says how many tries it took.
    result<http_reply> request(const std::string& path, const std::optional<std::string>& body);

    // POST /client/register: {"id", "name", "pending"}. 4xx: invalid_argument with the body.
    result<nlohmann::json> register_host(const std::string& mac, const std::string& name,
                                         const nlohmann::json& inventory);
    // GET /client/task: {"task", "host", "image"?, "session"?}. 403: denied (a wrong key,
    // or the task ended: the body says which).
    result<nlohmann::json> task();
    // POST /client/progress. 403/409: errc::cancelled (the task was cancelled or ended on
    // the server, the agent stops).
    result<nlohmann::json> progress(const nlohmann::json& doc);

    const client_config& config() const noexcept { return _config; }
    std::uint32_t attempts() const noexcept { return _attempts; }

private:
    client_config _config;
    std::uint32_t _attempts = 0;
};

// Posts progress from its own thread, the latest document at most once a second, so a
// disk loop never waits on HTTP. cancelled() turns true once shoald refuses a report
// (the task was cancelled or ended there).
class progress_reporter {
public:
    explicit progress_reporter(client_config c);
    ~progress_reporter();
    progress_reporter(const progress_reporter&) = delete;
    progress_reporter& operator=(const progress_reporter&) = delete;

    void update(nlohmann::json doc);
    bool cancelled() const noexcept { return _cancelled.load(); }
    // The flag itself, for loops that take an atomic cancel flag.
    const std::atomic<bool>* cancel_flag() const noexcept { return &_cancelled; }

private:
    void loop();
    client_api _api;
    std::mutex _mutex;
    std::condition_variable _cv;
    nlohmann::json _latest;
    bool _fresh = false;
    bool _stop = false;
    std::atomic<bool> _cancelled{false};
    std::thread _thread;
};

}  // namespace shoal::agent
