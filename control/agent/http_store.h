// A storage node's image store over HTTP (shoald's /store/ routes, docs/remote_images.md),
// as a chunk_source (deploy) and a chunk_sink (capture), with libcurl.
//
//   GET|HEAD /store/images/NAME/manifest        the image's manifest (manifest.h encoding)
//   PUT      /store/images/NAME/manifest        publish: the server validates it and checks
//                                               every chunk it names is stored, with its size
//   GET|HEAD /store/images/NAME/chunks/HEX      one chunk's zstd frame, HEX = its stored SHA-256
//   PUT      /store/images/NAME/chunks/HEX      upload: the server checks the body's SHA-256
//                                               against HEX and its size before storing it
//
// Credentials: the task's key (X-Shoal-Task-Key; a capture task of that host for that image
// may write, a deploy or multicast task may read) or an API token (Authorization: Bearer;
// admin or operator to write). Every request is retried a bounded number of times on
// network errors and 5xx answers (with a growing pause); 4xx answers are not retried.
// Reads check each chunk's SHA-256 here, on the client, before returning its bytes.
// A set cancel flag makes the next request fail with errc::cancelled.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "image/chunk_io.h"
#include "image/manifest.h"

namespace shoal::agent {

struct http_store_config {
    std::string base_url;  // the server, e.g. "http://10.0.0.1:8080" (no trailing '/')
    std::string image;     // the image this store's requests are for (in every URL)
    std::string task_key;  // X-Shoal-Task-Key, or empty
    std::string token;     // API bearer token, or empty
    unsigned attempts_max = 6;            // per request, the first one included
    unsigned retry_pause_ms = 250;        // first pause; doubles up to retry_pause_max_ms
    unsigned retry_pause_max_ms = 4000;
    unsigned connect_timeout_ms = 5000;
    unsigned request_timeout_ms = 120000;  // one whole request (a chunk is up to 16 MiB)
    const std::atomic<bool>* cancel = nullptr;  // when set and true: stop (errc::cancelled)
};

class http_store final : public image::chunk_source, public image::chunk_sink {
public:
    // Checks the config (URL scheme http/https, image name valid); makes no request.
    static result<std::unique_ptr<http_store>> open(http_store_config config);
    ~http_store() override;
    http_store(const http_store&) = delete;
    http_store& operator=(const http_store&) = delete;

    // "http://host:port/store/images/NAME"
    std::string location() const override;
    std::string chunk_name(const image::sha256_digest& stored_sha256) const override;

    // HEAD on the chunk: true on 200; false on 404 and on errors (then put_chunk uploads).
    bool has_chunk(const image::sha256_digest& stored_sha256) const noexcept override;

    // chunk_source. load(name) needs name == config.image (else invalid_argument).
    // Errors: not_found (404: no such image/chunk), denied (401/403: the key or token),
    // corrupt (a chunk whose SHA-256 or size does not match the reference), peer_gone (the
    // server did not answer after every attempt), cancelled.
    result<image::manifest> load(std::string_view name) const override;
    status read_chunk(const image::chunk_ref& ref, std::vector<std::byte>& out) const override;

    // chunk_sink. put_chunk skips chunks the server already has (HEAD first). Errors as
    // above, plus invalid_argument/corrupt when the server refuses the bytes (its message is
    // kept) and no_space (507).
    status put_chunk(const image::sha256_digest& stored_sha256,
                     std::span<const std::byte> frame) override;
    status publish(const image::manifest& m) override;

    // Requests made and bytes moved so far (for reports and tests).
    std::uint64_t requests() const noexcept;
    std::uint64_t bytes_sent() const noexcept;
    std::uint64_t bytes_received() const noexcept;

    struct state;

private:
    explicit http_store(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::agent
