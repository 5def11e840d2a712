// Capture a PC's disks to a storage node, and deploy (unicast) an image from one, over
// HTTP (http_store.h). What `shoal agent` runs for capture and deploy tasks.
//
// Capture reads the disks (engine/image/capture.h: used blocks only), compresses on every
// core and uploads each chunk the server does not already have; the server publishes the
// image only when the manifest arrives and every chunk it names is stored, so a capture cut
// midway publishes nothing. Deploy loads the manifest, then restores it onto the targets
// (engine/image/restore.h), each chunk's SHA-256 checked before a byte reaches the disk;
// with resume, chunks already on the disk are not fetched again. A restore that stops
// part-way leaves no valid partition table, so a partial disk never boots as a whole one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/manifest.h"
#include "image/restore.h"

namespace shoal::agent {

struct remote_server {
    std::string base_url;  // "http://10.0.0.1:8080"
    std::string task_key;  // X-Shoal-Task-Key of this host's task, or empty
    std::string token;     // or an API bearer token
    unsigned attempts_max = 6;  // per HTTP request (see http_store_config)
    unsigned retry_pause_ms = 250;  // before the second attempt; doubles up to 4 s
};

// done_bytes of total_bytes (used bytes of the image) so far. Called from worker threads,
// not too often (per chunk).
using progress_fn = std::function<void(std::uint64_t done_bytes, std::uint64_t total_bytes)>;

struct remote_capture_options {
    std::string image;                 // the image's name on the server
    std::vector<std::string> disks;    // block devices or disk image files, d1, d2, … in order
    image::image_kind kind = image::image_kind::single_disk_resizable;
    std::vector<std::uint32_t> partitions;  // multipart: only these (empty: all)
    bool shrink = true;                // see capture_options::shrink
    std::string description;
    unsigned threads = 0;              // 0: every core
    std::uint32_t chunk_size_bytes = 0;  // 0: image::chunk_size_default (4 MiB)
    progress_fn on_progress;
    const std::atomic<bool>* cancel = nullptr;  // set: stops at the next chunk (cancelled)
};

struct remote_capture_summary {
    image::manifest manifest;           // as published
    std::uint64_t uploaded_bytes = 0;   // chunk bytes sent (chunks the server lacked)
    std::uint64_t requests = 0;
};

// Errors name the disk or the server and what to do; nothing is published on error.
result<remote_capture_summary> capture_to_server(const remote_server& server,
                                                 const remote_capture_options& options);

struct remote_deploy_options {
    std::string image;
    std::vector<std::string> targets;  // one per disk of the image, in order
    bool resume = false;               // keep chunks already in place (a retried task)
    unsigned threads = 0;              // 0: every core
    std::uint64_t new_file_size_bytes = 0;  // see restore_options
    progress_fn on_progress;
    const std::atomic<bool>* cancel = nullptr;
};

struct remote_deploy_summary {
    image::restore_summary restore;
    std::uint64_t downloaded_bytes = 0;
    std::uint64_t requests = 0;
};

// Errors: the server's (not_found: no such image; denied: the key), no_space ("target X
// holds N bytes, the image's disk 1 needs at least M": nothing written), corrupt, cancelled.
result<remote_deploy_summary> deploy_from_server(const remote_server& server,
                                                 const remote_deploy_options& options);

}  // namespace shoal::agent
