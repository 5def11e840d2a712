#include "agent/remote_image.h"

#include "agent/http_store.h"
#include "image/capture.h"

namespace shoal::agent {

namespace {

result<std::unique_ptr<http_store>> open_store(const remote_server& server,
                                               const std::string& image,
                                               const std::atomic<bool>* cancel) {
    http_store_config c;
    c.base_url = server.base_url;
    c.image = image;
    c.task_key = server.task_key;
    c.token = server.token;
    c.attempts_max = server.attempts_max;
    c.retry_pause_ms = server.retry_pause_ms;
    c.cancel = cancel;
    return http_store::open(std::move(c));
}

bool is_cancelled(const std::atomic<bool>* cancel) {
    return cancel != nullptr && cancel->load();
}

}  // namespace

result<remote_capture_summary> capture_to_server(const remote_server& server,
                                                 const remote_capture_options& options) {
    auto store = open_store(server, options.image, options.cancel);
    if (!store) {
        return store.err();
    }
    image::capture_options co;
    co.disks = options.disks;
    co.kind = options.kind;
    co.partitions = options.partitions;
    co.shrink = options.shrink;
    co.build.threads = options.threads;
    co.build.description = options.description;
    if (options.chunk_size_bytes != 0) {
        co.build.chunk_size_bytes = options.chunk_size_bytes;
    }
    co.on_progress = options.on_progress;
    auto m = image::capture_image(**store, options.image, co);
    if (!m) {
        if (is_cancelled(options.cancel)) {
            return error::format(errc::cancelled, 0,
                                 "capture of {} to {} cancelled; nothing published",
                                 options.image, (*store)->location());
        }
        return m.err();
    }
    remote_capture_summary s;
    s.manifest = std::move(*m);
    s.uploaded_bytes = (*store)->bytes_sent();
    s.requests = (*store)->requests();
    return s;
}

result<remote_deploy_summary> deploy_from_server(const remote_server& server,
                                                 const remote_deploy_options& options) {
    auto store = open_store(server, options.image, options.cancel);
    if (!store) {
        return store.err();
    }
    auto m = (*store)->load(options.image);
    if (!m) {
        return m.err();
    }
    image::restore_options ro;
    ro.targets = options.targets;
    ro.resume = options.resume;
    ro.threads = options.threads;
    ro.new_file_size_bytes = options.new_file_size_bytes;
    ro.on_progress = options.on_progress;
    auto r = image::restore_image(**store, *m, ro);
    if (!r) {
        if (is_cancelled(options.cancel)) {
            return error::format(errc::cancelled, 0,
                                 "deploy of {} cancelled; the target has no valid partition "
                                 "table until a deploy completes",
                                 options.image);
        }
        return r.err();
    }
    remote_deploy_summary s;
    s.restore = *r;
    s.downloaded_bytes = (*store)->bytes_received();
    s.requests = (*store)->requests();
    return s;
}

}  // namespace shoal::agent
