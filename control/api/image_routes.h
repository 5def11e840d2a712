// Images over HTTP for the client OS and other storage clients (docs/remote_images.md):
// shoald's /store/ routes on top of its chunk store (engine/image/store.h).
//
//   GET|HEAD /store/images/NAME/manifest     the manifest file
//   PUT      /store/images/NAME/manifest     publish: decoded and validated, every chunk it
//                                            names present with its size, then the store's
//                                            publish and the image's row created/updated
//   GET|HEAD /store/images/NAME/chunks/HEX   a chunk's zstd frame (HEX: its stored SHA-256)
//   PUT      /store/images/NAME/chunks/HEX   upload: the body's SHA-256 must be HEX and its
//                                            size within chunk_stored_size_max; stored by
//                                            chunk_store::put_chunk (tmp file + rename)
//
// Who: an API token (Authorization: Bearer; any role reads, admin or operator writes; a
// protected image is not written), or X-Shoal-Task-Key of an open (not final) task whose
// image is NAME: a capture task reads and writes, a deploy or multicast task reads.
// Names that are not image names ([A-Za-z0-9._-], no leading '.' or '-') are refused
// (400), as is any other path shape.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "http/server.h"
#include "image/manifest.h"
#include "store/repository.h"

namespace shoal::api {

inline constexpr std::string_view image_routes_prefix = "/store/";
// The largest body these routes take: a chunk, or a manifest (the server's body limit for
// paths under image_routes_prefix must be at least this, see server_config).
inline constexpr std::size_t image_body_size_max = std::size_t{64} << 20;
static_assert(image_body_size_max >= image::chunk_stored_size_max);

struct image_routes_config {
    std::string store_dir;  // the chunk store (created when missing)
};

// Adds the /store/ routes. Does nothing when config.store_dir is empty.
void add_image_routes(http::router& routes, std::shared_ptr<store::repository> repo,
                      image_routes_config config);

}  // namespace shoal::api
