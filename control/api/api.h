// The REST API (/api/v1, docs/control.md "REST API"), the client OS's endpoints (/client/)
// and /metrics, as routes on bootsvc/http's router. Handlers are thread-safe: they share
// only the repository (itself thread-safe), the task control and atomic counters.
//
// Authentication: "Authorization: Bearer <token>" on every /api/v1 route but login and the
// OpenAPI document; 401 without a token or with a wrong or expired one, 403 for a viewer
// writing or an operator managing users. The client OS proves itself with its task's key
// (X-Shoal-Task-Key), which reaches that task only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "api/metrics.h"
#include "http/server.h"
#include "services.h"
#include "store/repository.h"

namespace shoal::api {

struct api_config {
    std::uint32_t login_token_ttl_s = 12 * 3600;
    std::int64_t list_limit_max = store::page::limit_max;
    // Where the client OS fetches image manifests and chunks ("" : this server's /store/, image_routes.h).
    std::string images_url;
    // The chunk store behind the /store/ routes (image_routes.h); "" : no such routes.
    std::string image_store_dir;
};

struct api_deps {
    std::shared_ptr<store::repository> repo;
    std::shared_ptr<control::task_control> tasks;  // never null
    std::shared_ptr<http_counters> counters;       // never null
    // More Prometheus text for /metrics (the boot services' counters); may be empty.
    std::function<void(std::string&)> extra_metrics;
};

// Adds /api/v1/..., /client/... and /metrics.
void add_api_routes(http::router& routes, api_deps deps, api_config config);

// A router that counts every request in `counters` and logs it (debug; warn for 5xx) and
// then hands it to `inner`.
http::router instrumented(std::shared_ptr<const http::router> inner,
                          std::shared_ptr<http_counters> counters);

// The OpenAPI 3 description of the API (GET /api/v1/openapi.json).
const nlohmann::json& openapi_document();

// Parses "Authorization: Bearer <token>": the token, or empty when the header is missing
// or not a Bearer header with a token of 1 to 256 visible ASCII characters.
std::string_view bearer_token(std::string_view authorization) noexcept;

}  // namespace shoal::api
