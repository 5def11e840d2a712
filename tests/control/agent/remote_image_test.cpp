// Images over HTTP, end to end in one process: the API router (with the /store/ routes) on a
// real libmicrohttpd server on 127.0.0.1, a SQLite control store, and the agent's libcurl
// client. A real ext4 disk (mkfs.ext4 -d, no root) is captured to the server and deployed
// back to a new file, which e2fsck and debugfs then check file by file.
#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/http_store.h"
#include "agent/remote_image.h"
#include "api/api.h"
#include "api/image_routes.h"
#include "image/capture.h"
#include "image/resize.h"
#include "image/store.h"
#include "store/repository.h"

namespace shoal {
namespace {

using json = nlohmann::json;

bool have(const char* tool) {
    return std::system(fmt::format("command -v {} >/dev/null 2>&1", tool).c_str()) == 0;
}

int sh(const std::string& cmd) {
    auto r = image::run_program({"bash", "-c", "set -eo pipefail; " + cmd});
    if (!r) {
        std::fprintf(stderr, "%s\n", r.err().describe().c_str());
        return 1;
    }
    return 0;
}

struct curl_reply {
    long status = 0;
    std::string body;
};

extern "C" std::size_t collect(char* p, std::size_t s, std::size_t n, void* u) {
    static_cast<std::string*>(u)->append(p, s * n);
    return s * n;
}

// One raw request; the path is sent as given (no "/../" squashing), so hostile paths reach
// the server as an attacker would send them.
curl_reply raw_call(const std::string& url, const char* verb, const std::string& body,
                    const std::vector<std::string>& headers) {
    curl_reply out;
    CURL* c = curl_easy_init();
    curl_slist* list = nullptr;
    for (const auto& h : headers) {
        list = curl_slist_append(list, h.c_str());
    }
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (std::string_view(verb) == "HEAD") {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb);
    }
    if (!body.empty()) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return out;
}

class no_tasks final : public control::task_control {
public:
    void task_changed(std::int64_t) noexcept override {}
    status wake(std::int64_t, const ipxe::mac_address&) override {
        return error(errc::unsupported, "no wake here");
    }
    void write_metrics(std::string&) const override {}
};

std::size_t files_under(const std::string& dir) {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        n += it->is_regular_file() ? 1 : 0;
    }
    return n;
}

class remote_image_test : public ::testing::Test {
protected:
    void SetUp() override {
        if (!have("mkfs.ext4") || !have("debugfs") || !have("e2fsck") || !have("sfdisk")) {
            GTEST_SKIP() << "e2fsprogs or sfdisk missing";
        }
        char templ[] = "/tmp/shoal-remote-XXXXXX";
        ASSERT_NE(mkdtemp(templ), nullptr);
        dir = templ;
        store_dir = dir + "/store";
        store::open_options o;
        o.cheap_password_hash = true;
        auto r = store::open_repository("sqlite://" + dir + "/shoal.db", o);
        ASSERT_TRUE(r) << r.err().describe();
        repo = std::move(*r);
        admin_token = make_user("root", store::user_role::admin);
        viewer_token = make_user("eve", store::user_role::viewer);

        // The master disk: a partition table and an ext4 with files (a directory tree and
        // incompressible data, so chunks are of every kind).
        disk = dir + "/master.img";
        ASSERT_EQ(sh(fmt::format(
                      "mkdir -p {0}/ref/etc && cp -r /usr/share/doc/bash {0}/ref/ && "
                      "head -c 3000000 /dev/urandom > {0}/ref/random && "
                      "echo shoal-remote-marker > {0}/ref/etc/marker && truncate -s 64M {1} && "
                      "echo 'start=2048, type=83' | sfdisk -q {1} && "
                      "mkfs.ext4 -q -F -d {0}/ref -E offset=1048576 {1} 60M",
                      dir, disk)),
                  0);

        golden = make_image("golden");
        capture_key = make_task("00:11:22:33:44:01", store::task_kind::capture, golden);
        deploy_key = make_task("00:11:22:33:44:02", store::task_kind::deploy, golden);
        start_server();
    }

    void TearDown() override {
        srv.reset();
        repo.reset();
        if (!dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    }

    void start_server() {
        http::router inner;
        api::api_deps deps;
        deps.repo = repo;
        deps.tasks = std::make_shared<no_tasks>();
        deps.counters = std::make_shared<api::http_counters>();
        api::api_config config;
        config.image_store_dir = store_dir;
        api::add_api_routes(inner, deps, config);
        http::server_config sc;
        sc.address = "127.0.0.1";
        sc.port = 0;
        sc.body_size_max_by_prefix.emplace_back(std::string(api::image_routes_prefix),
                                                api::image_body_size_max);
        auto s = http::server::start(
            sc, api::instrumented(std::make_shared<const http::router>(std::move(inner)),
                                  deps.counters));
        ASSERT_TRUE(s) << s.err().describe();
        srv = std::move(*s);
        base = fmt::format("http://127.0.0.1:{}", srv->port());
    }

    std::string make_user(const std::string& name, store::user_role role) {
        store::user u;
        u.name = name;
        u.role = role;
        auto made = repo->create_user(u, "correct horse " + name);
        EXPECT_TRUE(made) << made.err().describe();
        auto t = repo->create_token(made->id, "test", std::nullopt);
        EXPECT_TRUE(t) << t.err().describe();
        return t->secret;
    }

    store::record_id make_image(const std::string& name) {
        store::image i;
        i.name = name;
        auto made = repo->create_image(i);
        EXPECT_TRUE(made) << made.err().describe();
        return made->id;
    }

    // A host with one open task of `kind` for image `image_id`; returns the task's key.
    std::string make_task(const std::string& mac, store::task_kind kind,
                          store::record_id image_id, store::record_id* task_id = nullptr) {
        store::host h;
        h.mac = mac;
        h.name = "pc-" + mac.substr(mac.size() - 2);
        auto host = repo->create_host(h);
        EXPECT_TRUE(host) << host.err().describe();
        store::task t;
        t.kind = kind;
        t.host_id = host->id;
        t.image_id = image_id;
        auto task = repo->create_task(t);
        EXPECT_TRUE(task) << task.err().describe();
        if (task_id != nullptr) {
            *task_id = task->id;
        }
        auto key = repo->issue_task_key(task->id);
        EXPECT_TRUE(key) << key.err().describe();
        return *key;
    }

    agent::remote_server server(const std::string& key, const std::string& token = {}) const {
        agent::remote_server s;
        s.base_url = base;
        s.task_key = key;
        s.token = token;
        s.attempts_max = 2;
        s.retry_pause_ms = 100;
        return s;
    }

    agent::remote_capture_options capture_options(const std::string& image) const {
        agent::remote_capture_options c;
        c.image = image;
        c.disks = {disk};
        c.kind = image::image_kind::multi_partition_single_disk;
        c.shrink = false;
        c.threads = 2;
        c.chunk_size_bytes = 256u << 10;  // many chunks from a small disk
        return c;
    }

    // e2fsck passes on the deployed file and every file reads back as captured.
    void expect_same_files(const std::string& out) {
        EXPECT_EQ(sh(fmt::format("e2fsck -fn '{}?offset=1048576' >/dev/null", out)), 0);
        EXPECT_EQ(sh(fmt::format("rm -rf {0}/got && mkdir {0}/got && "
                                 "debugfs -R 'rdump / {0}/got' '{1}?offset=1048576' 2>/dev/null "
                                 "&& diff -r {0}/ref {0}/got -x lost+found",
                                 dir, out)),
                  0);
    }

    bool manifest_on_disk(const std::string& name) const {
        struct stat st {};
        return ::stat(fmt::format("{}/images/{}.manifest", store_dir, name).c_str(), &st) == 0;
    }

    std::string dir, store_dir, disk, base;
    std::shared_ptr<store::repository> repo;
    std::unique_ptr<http::server> srv;
    std::string admin_token, viewer_token, capture_key, deploy_key;
    store::record_id golden = 0;
};

TEST_F(remote_image_test, capture_then_deploy_round_trips_an_ext4_disk) {
    std::uint64_t last_done = 0, last_total = 0;
    auto c = capture_options("golden");
    c.on_progress = [&](std::uint64_t done, std::uint64_t total) {
        last_done = done;
        last_total = total;
    };
    auto cap = agent::capture_to_server(server(capture_key), c);
    ASSERT_TRUE(cap) << cap.err().describe();
    const std::uint64_t used = cap->manifest.used_bytes();
    EXPECT_GT(used, 3000000u);  // the random file at least
    EXPECT_EQ(last_done, used);
    EXPECT_GE(last_total, used);
    EXPECT_GE(cap->uploaded_bytes, cap->manifest.stored_bytes() / 2);  // dedup may save some
    EXPECT_TRUE(manifest_on_disk("golden"));

    // The image's row: size and disks from the manifest.
    auto row = repo->get_image(golden);
    ASSERT_TRUE(row);
    EXPECT_EQ(row->size_bytes, static_cast<std::int64_t>(used));
    EXPECT_EQ(row->kind, store::image_kind::multi_partition_single_disk);
    const json disks = json::parse(row->disks);
    ASSERT_EQ(disks.size(), 1u);
    EXPECT_EQ(disks[0]["size_bytes"], 64u << 20);
    EXPECT_EQ(disks[0]["table"], "mbr");
    ASSERT_EQ(disks[0]["partitions"].size(), 1u);
    EXPECT_EQ(disks[0]["partitions"][0]["fs"], "ext4");

    // The same disk again: every chunk is already there, nothing but the manifest is sent.
    auto again = agent::capture_to_server(server(capture_key), c);
    ASSERT_TRUE(again) << again.err().describe();
    EXPECT_LT(again->uploaded_bytes, 1u << 20);  // the manifest only
    EXPECT_EQ(again->manifest.disks, cap->manifest.disks);

    // Deploy with the deploy task's key onto a new file.
    const std::string out = dir + "/deployed.img";
    agent::remote_deploy_options d;
    d.image = "golden";
    d.targets = {out};
    d.threads = 2;
    std::uint64_t deploy_done = 0;
    d.on_progress = [&](std::uint64_t done, std::uint64_t) { deploy_done = done; };
    auto dep = agent::deploy_from_server(server(deploy_key), d);
    ASSERT_TRUE(dep) << dep.err().describe();
    EXPECT_EQ(dep->restore.written_bytes, used);
    EXPECT_EQ(deploy_done, used);
    EXPECT_GE(dep->downloaded_bytes, cap->manifest.stored_bytes() / 2);
    expect_same_files(out);

    // Resume onto the deployed disk: every chunk is found in place, none fetched.
    d.resume = true;
    auto resumed = agent::deploy_from_server(server(deploy_key), d);
    ASSERT_TRUE(resumed) << resumed.err().describe();
    EXPECT_EQ(resumed->restore.skipped_bytes, used);
    EXPECT_EQ(resumed->restore.written_bytes, 0u);
    expect_same_files(out);

    // An API token works too (any role reads).
    auto by_token = agent::deploy_from_server(server({}, viewer_token), d);
    EXPECT_TRUE(by_token) << by_token.err().describe();
}

TEST_F(remote_image_test, a_corrupt_or_oversized_chunk_is_refused_and_nothing_stored) {
    const std::string frame = "these bytes are not what the name says";
    const std::string other = "other bytes";
    const std::string hex = image::to_hex(image::sha256_of(
        {reinterpret_cast<const std::byte*>(other.data()), other.size()}));
    const std::string url = base + "/store/images/golden/chunks/" + hex;
    auto r = raw_call(url, "PUT", frame, {"X-Shoal-Task-Key: " + capture_key});
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("SHA-256"), std::string::npos) << r.body;
    EXPECT_EQ(files_under(store_dir + "/chunks"), 0u);
    EXPECT_EQ(raw_call(url, "HEAD", "", {"X-Shoal-Task-Key: " + capture_key}).status, 404);

    // Bigger than a chunk can be: refused before it is hashed or stored.
    std::string big(image::chunk_stored_size_max + 1, 'x');
    const std::string big_hex = image::to_hex(
        image::sha256_of({reinterpret_cast<const std::byte*>(big.data()), big.size()}));
    auto b = raw_call(base + "/store/images/golden/chunks/" + big_hex, "PUT", big,
                      {"X-Shoal-Task-Key: " + capture_key});
    EXPECT_EQ(b.status, 413) << b.body;
    EXPECT_EQ(files_under(store_dir + "/chunks"), 0u);

    // The right bytes under their own name are stored, and read back the same.
    auto good = raw_call(url, "PUT", other, {"X-Shoal-Task-Key: " + capture_key});
    EXPECT_EQ(good.status, 201) << good.body;
    EXPECT_EQ(files_under(store_dir + "/chunks"), 1u);
    auto back = raw_call(url, "GET", "", {"X-Shoal-Task-Key: " + deploy_key});
    EXPECT_EQ(back.status, 200);
    EXPECT_EQ(back.body, other);
}

TEST_F(remote_image_test, a_manifest_naming_a_missing_chunk_or_garbage_is_refused) {
    // The manifest of a capture into a local store: the server has none of its chunks.
    auto local = image::chunk_store::open(dir + "/local", true);
    ASSERT_TRUE(local);
    image::capture_options co;
    co.disks = {disk};
    co.kind = image::image_kind::multi_partition_single_disk;
    co.shrink = false;
    co.build.threads = 2;
    auto m = image::capture_image(**local, "golden", co);
    ASSERT_TRUE(m) << m.err().describe();
    auto bytes = image::encode_manifest(*m);
    ASSERT_TRUE(bytes);
    const std::string body(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    auto r = raw_call(base + "/store/images/golden/manifest", "PUT", body,
                      {"X-Shoal-Task-Key: " + capture_key});
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_NE(r.body.find("not stored"), std::string::npos) << r.body;
    EXPECT_FALSE(manifest_on_disk("golden"));
    EXPECT_EQ(repo->get_image(golden)->size_bytes, 0);

    // Every chunk but one uploaded: still refused.
    std::vector<image::chunk_ref> refs;
    for (const auto& d : m->disks) {
        for (const auto& reg : d.regions) {
            refs.insert(refs.end(), reg.chunks.begin(), reg.chunks.end());
        }
    }
    ASSERT_GE(refs.size(), 2u);
    agent::http_store_config hc;
    hc.base_url = base;
    hc.image = "golden";
    hc.task_key = capture_key;
    auto hs = agent::http_store::open(hc);
    ASSERT_TRUE(hs);
    std::vector<std::byte> frame;
    for (std::size_t i = 1; i < refs.size(); ++i) {
        ASSERT_TRUE((*local)->read_chunk(refs[i], frame));
        auto st = (*hs)->put_chunk(refs[i].stored_sha256, frame);
        ASSERT_TRUE(st) << st.err().describe();
    }
    r = raw_call(base + "/store/images/golden/manifest", "PUT", body,
                 {"X-Shoal-Task-Key: " + capture_key});
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_FALSE(manifest_on_disk("golden"));
    // The last one, and it publishes.
    ASSERT_TRUE((*local)->read_chunk(refs[0], frame));
    ASSERT_TRUE((*hs)->put_chunk(refs[0].stored_sha256, frame));
    auto pub = (*hs)->publish(*m);
    EXPECT_TRUE(pub) << pub.err().describe();
    EXPECT_TRUE(manifest_on_disk("golden"));

    // Garbage, a truncated manifest, and one whose name is not the URL's: refused.
    EXPECT_EQ(raw_call(base + "/store/images/golden/manifest", "PUT", "not a manifest",
                       {"X-Shoal-Task-Key: " + capture_key})
                  .status,
              400);
    EXPECT_EQ(raw_call(base + "/store/images/golden/manifest", "PUT",
                       body.substr(0, body.size() / 2), {"X-Shoal-Task-Key: " + capture_key})
                  .status,
              400);
    make_image("other");
    EXPECT_EQ(raw_call(base + "/store/images/other/manifest", "PUT", body,
                       {"Authorization: Bearer " + admin_token})
                  .status,
              400);
    EXPECT_FALSE(manifest_on_disk("other"));
}

TEST_F(remote_image_test, no_key_a_wrong_key_or_a_key_of_another_kind_is_refused) {
    const std::string url = base + "/store/images/golden/manifest";
    const std::string chunk = base + "/store/images/golden/chunks/" + std::string(64, 'a');
    EXPECT_EQ(raw_call(url, "GET", "", {}).status, 401);
    EXPECT_EQ(raw_call(url, "GET", "", {"X-Shoal-Task-Key: " + std::string(64, '0')}).status,
              403);
    EXPECT_EQ(raw_call(url, "GET", "", {"Authorization: Bearer nope"}).status, 401);
    EXPECT_EQ(raw_call(chunk, "PUT", "x", {}).status, 401);
    // A viewer reads but does not write; a deploy task reads but does not write.
    EXPECT_EQ(raw_call(url, "GET", "", {"Authorization: Bearer " + viewer_token}).status, 404);
    EXPECT_EQ(raw_call(chunk, "PUT", "x", {"Authorization: Bearer " + viewer_token}).status, 403);
    EXPECT_EQ(raw_call(chunk, "PUT", "x", {"X-Shoal-Task-Key: " + deploy_key}).status, 403);
    // A key of a task for another image reaches neither.
    const auto other = make_image("other");
    const std::string other_key = make_task("00:11:22:33:44:03", store::task_kind::capture, other);
    EXPECT_EQ(raw_call(url, "GET", "", {"X-Shoal-Task-Key: " + other_key}).status, 403);
    EXPECT_EQ(raw_call(chunk, "PUT", "x", {"X-Shoal-Task-Key: " + other_key}).status, 403);
    // A wipe task's key reaches no image.
    store::record_id wipe_id = 0;
    const std::string wipe_key =
        make_task("00:11:22:33:44:04", store::task_kind::wipe_fast, golden, &wipe_id);
    EXPECT_EQ(raw_call(url, "GET", "", {"X-Shoal-Task-Key: " + wipe_key}).status, 403);
    // A task that ended: its key no longer works.
    store::record_id done_id = 0;
    const std::string done_key =
        make_task("00:11:22:33:44:05", store::task_kind::deploy, golden, &done_id);
    ASSERT_TRUE(repo->transition_task(done_id, store::task_state::cancelled, "test"));
    EXPECT_EQ(raw_call(url, "GET", "", {"X-Shoal-Task-Key: " + done_key}).status, 403);
    // The client maps these to clear errors.
    agent::remote_deploy_options d;
    d.image = "golden";
    d.targets = {dir + "/never.img"};
    auto denied = agent::deploy_from_server(server(std::string(64, '0')), d);
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.err().code(), errc::denied) << denied.err().describe();
    auto missing = agent::deploy_from_server(server(deploy_key), d);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.err().code(), errc::not_found) << missing.err().describe();
    EXPECT_FALSE(std::filesystem::exists(dir + "/never.img"));
    // A protected image is not captured over.
    auto row = repo->get_image(golden);
    row->is_protected = true;
    ASSERT_TRUE(repo->update_image(*row));
    EXPECT_EQ(raw_call(chunk, "PUT", "x", {"X-Shoal-Task-Key: " + capture_key}).status, 403);
}

TEST_F(remote_image_test, hostile_names_are_refused) {
    const std::vector<std::string> headers = {"Authorization: Bearer " + admin_token};
    const std::string hex(64, 'a');
    for (const std::string& path : std::vector<std::string>{
             "/store/images/../manifest",
             "/store/images/..%2F..%2Fetc/manifest",
             "/store/images/a%2Fb/manifest",
             "/store/images/a%00b/manifest",
             "/store/images/.hidden/manifest",
             "/store/images/-x/manifest",
             "/store/images//manifest",
             "/store/images/golden/manifest/extra",
             "/store/images/golden/chunks/" + std::string(64, 'A'),
             "/store/images/golden/chunks/..%2F..%2Fimages%2Fgolden.manifest",
             "/store/images/golden/chunks/" + hex + "/x",
             "/store/images/golden/chunks/" + hex.substr(1),
             "/store/images/golden/other/" + hex,
         }) {
        for (const char* verb : {"GET", "PUT"}) {
            auto r = raw_call(base + path, verb, "x", headers);
            EXPECT_TRUE(r.status == 400 || r.status == 404) << verb << " " << path << ": "
                                                             << r.status << " " << r.body;
        }
    }
    EXPECT_EQ(files_under(store_dir), 0u);
    // A name that is not an image's never reaches a store at the client either.
    agent::http_store_config hc;
    hc.base_url = base;
    hc.image = "../etc";
    EXPECT_FALSE(agent::http_store::open(hc));
}

TEST_F(remote_image_test, a_capture_cut_midway_publishes_nothing) {
    // The server goes away after the first chunks: the client retries (bounded), gives up,
    // and the image does not appear, neither in the store nor in its row.
    auto c = capture_options("golden");
    std::atomic<bool> stopped{false};
    c.on_progress = [&](std::uint64_t done, std::uint64_t) {
        if (done >= (1u << 20) && !stopped.exchange(true)) {
            srv->stop();  // four chunks of 256 KiB are stored by now
        }
    };
    auto cap = agent::capture_to_server(server(capture_key), c);
    ASSERT_FALSE(cap);
    EXPECT_EQ(cap.err().code(), errc::peer_gone) << cap.err().describe();
    EXPECT_NE(cap.err().describe().find("attempts"), std::string::npos)
        << cap.err().describe();
    EXPECT_FALSE(manifest_on_disk("golden"));
    EXPECT_EQ(repo->get_image(golden)->size_bytes, 0);
    EXPECT_GT(files_under(store_dir + "/chunks"), 0u);  // some chunks did arrive

    // Cancelled midway: the same.
    start_server();
    std::atomic<bool> cancel{false};
    c.cancel = &cancel;
    c.on_progress = [&](std::uint64_t, std::uint64_t) { cancel = true; };
    auto cancelled = agent::capture_to_server(server(capture_key), c);
    ASSERT_FALSE(cancelled);
    EXPECT_EQ(cancelled.err().code(), errc::cancelled) << cancelled.err().describe();
    EXPECT_FALSE(manifest_on_disk("golden"));

    // A deploy cancelled midway stops too, and says so.
    c.cancel = nullptr;
    c.on_progress = nullptr;
    c.chunk_size_bytes = 64u << 10;  // enough chunks that the deploy is still going
    ASSERT_TRUE(agent::capture_to_server(server(capture_key), c));
    agent::remote_deploy_options d;
    d.image = "golden";
    d.targets = {dir + "/partial.img"};
    d.threads = 1;
    std::atomic<bool> stop{false};
    d.cancel = &stop;
    d.on_progress = [&](std::uint64_t, std::uint64_t) { stop = true; };
    auto dep = agent::deploy_from_server(server(deploy_key), d);
    ASSERT_FALSE(dep);
    EXPECT_EQ(dep.err().code(), errc::cancelled) << dep.err().describe();
    // No valid partition table on the partial disk.
    EXPECT_NE(sh(fmt::format("sfdisk -d {} >/dev/null 2>&1", dir + "/partial.img")), 0);
}

}  // namespace
}  // namespace shoal
