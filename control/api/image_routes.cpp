#include "api/image_routes.h"

#include <sys/stat.h>

#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/api.h"
#include "common/log.h"
#include "image/restore.h"
#include "image/store.h"
#include "rootdir/root_dir.h"

namespace shoal::api {

namespace {

using http::method;
using http::request;
using http::response;
using json = nlohmann::json;

constexpr std::string_view images_prefix = "/store/images/";

enum class access { read, write };

response refuse(unsigned status, std::string_view message) {
    auto r = response::json(status, json{{"error", message}});
    if (status == 401) {
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"shoal\"");
    }
    return r;
}

response from_error(const error& e) {
    const std::string message = e.describe();
    switch (e.code()) {
    case errc::invalid_argument:
    case errc::malformed:
    case errc::truncated:
    case errc::corrupt:
    case errc::version: return refuse(400, message);
    case errc::not_found: return refuse(404, message);
    case errc::denied: return refuse(403, message);
    case errc::conflict:
    case errc::exists: return refuse(409, message);
    case errc::no_space: return refuse(507, message);
    case errc::unavailable: return refuse(503, message);
    default: log::warn("store routes: {}", message); return refuse(500, message);
    }
}

store::image_kind to_store_kind(image::image_kind k) {
    switch (k) {
    case image::image_kind::single_disk_resizable: return store::image_kind::single_disk_resizable;
    case image::image_kind::multi_partition_single_disk:
        return store::image_kind::multi_partition_single_disk;
    case image::image_kind::multi_partition_all_disks:
        return store::image_kind::multi_partition_all_disks;
    case image::image_kind::raw: return store::image_kind::raw;
    }
    return store::image_kind::raw;
}

// The image row's "disks": what a person (and the disk rule) wants to know per disk.
std::string disks_json(const image::manifest& m) {
    json disks = json::array();
    for (const auto& d : m.disks) {
        json parts = json::array();
        for (const auto& r : d.regions) {
            if (r.partition_number == 0) {
                continue;
            }
            parts.push_back({{"number", r.partition_number},
                             {"offset_bytes", r.offset_bytes},
                             {"size_bytes", r.size_bytes},
                             {"minimum_size_bytes", r.minimum_size_bytes},
                             {"fs", image::fs_name(r.fs)},
                             {"used_bytes", r.used_bytes()}});
        }
        disks.push_back({{"index", d.index},
                         {"size_bytes", d.size_bytes},
                         {"minimum_size_bytes", image::minimum_disk_size(m, d)},
                         {"table", d.table.kind == image::table_kind::gpt   ? "gpt"
                                   : d.table.kind == image::table_kind::mbr ? "mbr"
                                                                            : "none"},
                         {"source", d.source},
                         {"partitions", std::move(parts)}});
    }
    return disks.dump();
}

class image_service {
public:
    image_service(std::shared_ptr<store::repository> repo, image_routes_config config)
        : _repo(std::move(repo)), _config(std::move(config)) {}

    response handle(const request& r);

private:
    // Ok when the request may read or write image `name`; else the response to send.
    std::optional<response> authorize(const request& r, std::string_view name, access a);
    response get_manifest(const request& r, std::string_view name);
    response put_manifest(const request& r, std::string_view name);
    response get_chunk(const request& r, std::string_view hex);
    response get_file(const std::string& relative_path, const std::string& what);
    response put_chunk(const request& r, std::string_view name, std::string_view hex);
    result<std::unique_ptr<image::chunk_store>> open_store() const;

    std::shared_ptr<store::repository> _repo;
    image_routes_config _config;
};

result<std::unique_ptr<image::chunk_store>> image_service::open_store() const {
    // Opened per request: the shared lock is held only while a request runs, so `shoal
    // image rm` (exclusive) is never blocked by an idle server. A chunk uploaded and swept
    // before its manifest arrives makes that publish fail (every chunk is checked), never
    // publishes a broken image.
    return image::chunk_store::open(_config.store_dir, true);
}

std::optional<response> image_service::authorize(const request& r, std::string_view name,
                                                 access a) {
    if (auto header = r.header("Authorization")) {
        const std::string_view token = bearer_token(*header);
        if (token.empty()) {
            return refuse(401, "the Authorization header must be \"Bearer <token>\"");
        }
        auto id = _repo->lookup_token(token);
        if (!id) {
            if (id.err().code() == errc::denied || id.err().code() == errc::not_found) {
                return refuse(401, "the API token is unknown or expired");
            }
            return from_error(id.err());
        }
        if (a == access::write && id->owner.role == store::user_role::viewer) {
            return refuse(403, fmt::format("user {} is a viewer: writing image {} needs an "
                                           "admin or operator",
                                           id->owner.name, name));
        }
    } else if (auto key = r.header("X-Shoal-Task-Key")) {
        if (key->empty() || key->size() > 256) {
            return refuse(401, "the X-Shoal-Task-Key header is empty or too long");
        }
        auto t = _repo->get_task_by_key(*key);
        if (!t) {
            if (t.err().code() == errc::denied || t.err().code() == errc::not_found) {
                return refuse(403, "the task key is not valid");
            }
            return from_error(t.err());
        }
        if (store::is_final(t->state)) {
            return refuse(403, fmt::format("task {} is {}: its key no longer reaches images", t->id,
                                           store::to_string(t->state)));
        }
        const bool reads = t->kind == store::task_kind::deploy ||
                           t->kind == store::task_kind::multicast ||
                           t->kind == store::task_kind::capture;
        if ((a == access::write && t->kind != store::task_kind::capture) || !reads) {
            return refuse(403, fmt::format("task {} is a {} task: it may not {} image {}", t->id,
                                           store::to_string(t->kind),
                                           a == access::write ? "write" : "read", name));
        }
        if (!t->image_id) {
            return refuse(403, fmt::format("task {} names no image", t->id));
        }
        auto img = _repo->get_image(*t->image_id);
        if (!img) {
            return from_error(img.err());
        }
        if (img->name != name) {
            return refuse(403,
                          fmt::format("task {} is for image {}, not {}", t->id, img->name, name));
        }
    } else {
        return refuse(401,
                      "credentials are required: Authorization: Bearer <token>, or the "
                      "task's X-Shoal-Task-Key");
    }
    if (a == access::write) {
        auto img = _repo->get_image_by_name(name);
        if (img && img->is_protected) {
            return refuse(403, fmt::format("image {} is protected: unprotect it before "
                                           "capturing over it",
                                           name));
        }
        if (!img && img.err().code() != errc::not_found) {
            return from_error(img.err());
        }
    }
    return std::nullopt;
}

response image_service::handle(const request& r) {
    // NAME/manifest or NAME/chunks/HEX; anything else (an empty part, a '/' decoded from
    // %2F, `..`) is not an image's path.
    std::string_view rest = r.path().substr(images_prefix.size());
    std::vector<std::string_view> parts;
    while (true) {
        const auto slash = rest.find('/');
        parts.push_back(rest.substr(0, slash));
        if (slash == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(slash + 1);
    }
    const bool manifest_path = parts.size() == 2 && parts[1] == "manifest";
    const bool chunk_path = parts.size() == 3 && parts[1] == "chunks";
    if (!manifest_path && !chunk_path) {
        return refuse(404,
                      "not an image store path: /store/images/NAME/manifest or "
                      "/store/images/NAME/chunks/SHA256");
    }
    const std::string_view name = parts[0];
    if (auto st = image::check_image_name(name); !st) {
        return refuse(
            400, fmt::format("\"{:.100}\" is not an image name: {}", name, st.err().context()));
    }
    if (chunk_path) {
        auto d = image::digest_from_hex(parts[2]);
        if (!d || image::to_hex(*d) != parts[2]) {
            return refuse(400, fmt::format("\"{:.100}\" is not a chunk name (64 lowercase hex "
                                           "digits: the SHA-256 of its bytes)",
                                           parts[2]));
        }
    }
    const bool writing = r.verb() == method::put;
    if (auto refused = authorize(r, name, writing ? access::write : access::read)) {
        return std::move(*refused);
    }
    if (manifest_path) {
        return writing ? put_manifest(r, name) : get_manifest(r, name);
    }
    return writing ? put_chunk(r, name, parts[2]) : get_chunk(r, parts[2]);
}

response image_service::get_manifest(const request&, std::string_view name) {
    return get_file(fmt::format("images/{}.manifest", name), fmt::format("image {}", name));
}

response image_service::get_chunk(const request&, std::string_view hex) {
    return get_file(fmt::format("chunks/{}/{}/{}", hex.substr(0, 2), hex.substr(2, 2), hex),
                    fmt::format("chunk {}", hex));
}

// A file of the store, opened below its root only (the name's checks already refused
// anything that could climb out); `what` names it in the 404.
response image_service::get_file(const std::string& relative_path, const std::string& what) {
    auto store = open_store();  // makes the store on first use, waits out a sweep
    if (!store) {
        return from_error(store.err());
    }
    auto root = bootsvc::root_dir::open((*store)->path());
    if (!root) {
        return from_error(root.err());
    }
    auto f = root->open_file(relative_path);
    if (!f) {
        if (f.err().code() == errc::not_found) {
            return refuse(404, fmt::format("no {} in the store", what));
        }
        return from_error(f.err());
    }
    return response::from_file(std::move(*f), "application/octet-stream");
}

response image_service::put_chunk(const request& r, std::string_view name, std::string_view hex) {
    const std::string_view body = r.body();
    if (body.empty() || body.size() > image::chunk_stored_size_max) {
        return refuse(body.empty() ? 400 : 413,
                      fmt::format("chunk {}: {} bytes; a chunk holds 1 to {} bytes: nothing "
                                  "stored",
                                  hex, body.size(), image::chunk_stored_size_max));
    }
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(body.data()),
                                           body.size());
    const image::sha256_digest got = image::sha256_of(bytes);
    if (image::to_hex(got) != hex) {
        log::warn("store routes: image {}: chunk {} uploaded from {} hashes to {}: refused", name,
                  hex, r.remote_address(), image::to_hex(got));
        return refuse(400, fmt::format("chunk {}: the body's SHA-256 is {}: damaged on the "
                                       "way? nothing stored, send it again",
                                       hex, image::to_hex(got)));
    }
    auto store = open_store();
    if (!store) {
        return from_error(store.err());
    }
    if ((*store)->has_chunk(got)) {
        return response::json(200, json{{"chunk", hex}, {"stored", false}});
    }
    if (auto st = (*store)->put_chunk(got, bytes); !st) {
        return from_error(st.err());
    }
    return response::json(201, json{{"chunk", hex}, {"stored", true}});
}

response image_service::put_manifest(const request& r, std::string_view name) {
    const std::string_view body = r.body();
    const std::string what = fmt::format("the manifest sent for image {}", name);
    auto m = image::decode_manifest({reinterpret_cast<const std::byte*>(body.data()), body.size()},
                                    what);
    if (!m) {
        return from_error(m.err());
    }
    if (m->name != name) {
        return refuse(400, fmt::format("{} names image {}: nothing published", what, m->name));
    }
    auto store = open_store();
    if (!store) {
        return from_error(store.err());
    }
    // Every chunk present, with the size the manifest gives, before the image appears.
    std::uint64_t missing = 0;
    std::string first_missing;
    for (const auto& d : m->disks) {
        for (const auto& reg : d.regions) {
            for (const auto& c : reg.chunks) {
                struct stat st {};
                const std::string path = (*store)->chunk_path(c.stored_sha256);
                if (::stat(path.c_str(), &st) != 0 ||
                    static_cast<std::uint64_t>(st.st_size) != c.stored_size) {
                    if (missing++ == 0) {
                        first_missing = image::to_hex(c.stored_sha256);
                    }
                }
            }
        }
    }
    if (missing != 0) {
        return refuse(409, fmt::format("image {}: {} chunk(s) the manifest names are not "
                                       "stored (first: {}): upload them first; nothing "
                                       "published",
                                       name, missing, first_missing));
    }
    if (auto st = (*store)->publish(*m); !st) {
        return from_error(st.err());
    }
    // The image's row: created on its first capture, updated on the next.
    store::image row;
    auto existing = _repo->get_image_by_name(name);
    if (existing) {
        row = std::move(*existing);
    } else if (existing.err().code() != errc::not_found) {
        return from_error(existing.err());
    } else {
        row.name = std::string(name);
    }
    row.kind = to_store_kind(m->kind);
    if (row.description.empty()) {
        row.description = m->description.substr(0, 1000);
    }
    row.size_bytes = static_cast<std::int64_t>(m->used_bytes());
    row.disks = disks_json(*m);
    // One copy per publish; moving row in both arms reads to cppcheck as a use after move.
    auto saved = existing ? _repo->update_image(row) : _repo->create_image(row);
    if (!saved) {
        log::warn("store routes: image {} published to the store, but its record: {}", name,
                  saved.err().describe());
        return from_error(saved.err());
    }
    log::info("store routes: image {} published from {}: {} disk(s), {} used bytes", name,
              r.remote_address(), m->disks.size(), m->used_bytes());
    return response::json(200, json{{"image", saved->id},
                                    {"name", saved->name},
                                    {"size_bytes", saved->size_bytes},
                                    {"stored_bytes", m->stored_bytes()}});
}

}  // namespace

void add_image_routes(http::router& routes, std::shared_ptr<store::repository> repo,
                      image_routes_config config) {
    if (config.store_dir.empty()) {
        return;
    }
    auto svc = std::make_shared<image_service>(std::move(repo), std::move(config));
    for (method m : {method::get, method::put}) {
        routes.add_prefix(m, std::string(images_prefix),
                          [svc](const request& r) { return svc->handle(r); });
    }
}

}  // namespace shoal::api
