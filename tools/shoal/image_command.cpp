// shoal image capture|restore|export|verify|list|info|rm: disk images in a chunk store.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>

#include "agent/http_store.h"
#include "api_client.h"
#include "commands.h"
#include "common/clock.h"
#include "common/log.h"
#include "image/capture.h"
#include "image/restore.h"
#include "image/store.h"
#include "progress.h"
#include "transfer_options.h"

namespace shoal::cli {

namespace {

struct image_options {
    std::string store = image::default_store_path();
    std::string progress = "auto";
    std::string name;
    std::vector<std::string> names;
    std::vector<std::string> disks;
    std::string type = "resizable";
    std::vector<std::uint32_t> partitions;
    bool no_shrink = false;
    std::string chunk_size = "4M";
    int level = image::zstd_level_default;
    unsigned threads = 0;
    std::string description;
    bool resume = false;
    std::string output;
    std::uint32_t disk_index = 1;
    std::string size;
    bool json = false;
    // capture/restore through shoald's /store/ routes instead of a local store.
    std::string server;
    std::string token;
    std::string task_key;
};

int fail(const error& e) {
    std::fprintf(stderr, "shoal image: %s\n", e.describe().c_str());
    return 1;
}

result<progress_printer::mode> progress_mode(const image_options& o) {
    return progress_printer::parse_mode(o.progress);
}

std::string when(std::uint64_t unix_s) {
    const std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
    return buf;
}

// The store to write to or read from: shoald's (--server) or a local directory.
struct opened_store {
    std::unique_ptr<image::chunk_store> local;
    std::unique_ptr<agent::http_store> remote;
    image::chunk_sink& sink() { return local ? static_cast<image::chunk_sink&>(*local) : *remote; }
    image::chunk_source& source() {
        return local ? static_cast<image::chunk_source&>(*local) : *remote;
    }
};

result<opened_store> open_store(const image_options& o, bool create) {
    opened_store s;
    if (!o.server.empty()) {
        agent::http_store_config c;
        c.base_url = o.server;
        c.image = o.name;
        c.token = o.token;
        if (c.token.empty() && std::getenv("SHOAL_TOKEN") != nullptr) {
            c.token = std::getenv("SHOAL_TOKEN");
        }
        c.task_key = o.task_key;
        auto r = agent::http_store::open(std::move(c));
        if (!r) {
            return r.err();
        }
        s.remote = std::move(*r);
        return s;
    }
    auto l = image::chunk_store::open(o.store, create);
    if (!l) {
        return l.err();
    }
    s.local = std::move(*l);
    return s;
}

int run_capture(const image_options& o) {
    auto kind = image::parse_kind(o.type);
    if (!kind) {
        return fail(kind.err());
    }
    auto chunk = parse_size_bytes(o.chunk_size);
    if (!chunk) {
        return fail(chunk.err());
    }
    auto mode = progress_mode(o);
    if (!mode) {
        return fail(mode.err());
    }
    auto store = open_store(o, true);
    if (!store) {
        return fail(store.err());
    }
    image::capture_options c;
    c.disks = o.disks;
    c.kind = *kind;
    c.partitions = o.partitions;
    c.shrink = !o.no_shrink;
    c.build.chunk_size_bytes = static_cast<std::uint32_t>(*chunk);
    c.build.zstd_level = o.level;
    c.build.threads = o.threads;
    c.build.description = o.description;
    progress_printer printer(*mode, "capture " + o.name);
    c.on_progress = [&](std::uint64_t done, std::uint64_t total) { printer.update(done, total); };
    const std::int64_t start = time::monotonic_ns();
    auto m = image::capture_image(store->sink(), o.name, c);
    if (!m) {
        printer.finish(0, 0);
        return fail(m.err());
    }
    const double s = static_cast<double>(time::monotonic_ns() - start) / 1e9;
    printer.finish(m->used_bytes(), m->used_bytes());
    if (o.json) {
        std::printf("%s\n", nlohmann::json({{"name", m->name},
                                            {"used_bytes", m->used_bytes()},
                                            {"stored_bytes", m->stored_bytes()},
                                            {"seconds", s}})
                                .dump()
                                .c_str());
    } else {
        std::printf("captured %s: %s used, %s stored, %.1f s (%s)\n", m->name.c_str(),
                    human_bytes(static_cast<double>(m->used_bytes())).c_str(),
                    human_bytes(static_cast<double>(m->stored_bytes())).c_str(), s,
                    human_rate(static_cast<double>(m->used_bytes()) / s).c_str());
    }
    return 0;
}

int restore_to(const image_options& o, std::vector<std::string> targets, std::uint64_t new_size,
               const char* verb) {
    auto mode = progress_mode(o);
    if (!mode) {
        return fail(mode.err());
    }
    auto store = open_store(o, false);
    if (!store) {
        return fail(store.err());
    }
    auto m = store->source().load(o.name);
    if (!m) {
        return fail(m.err());
    }
    if (targets.empty()) {
        return fail(error(errc::invalid_argument, "no target (--disk)"));
    }
    image::manifest view = *m;
    if (std::string_view(verb) == "export") {
        // One disk of the image into a file.
        bool found = false;
        for (const auto& d : m->disks) {
            if (d.index == o.disk_index) {
                view.disks = {d};
                found = true;
            }
        }
        if (!found) {
            return fail(
                error::format(errc::not_found, 0, "image {} has no disk {}", o.name, o.disk_index));
        }
    }
    image::restore_options r;
    r.targets = std::move(targets);
    r.resume = o.resume;
    r.threads = o.threads;
    r.new_file_size_bytes = new_size;
    progress_printer printer(*mode, std::string(verb) + " " + o.name);
    r.on_progress = [&](std::uint64_t done, std::uint64_t total) { printer.update(done, total); };
    const std::int64_t start = time::monotonic_ns();
    auto sum = image::restore_image(store->source(), view, r);
    if (!sum) {
        printer.finish(0, view.used_bytes());
        return fail(sum.err());
    }
    const double s = static_cast<double>(time::monotonic_ns() - start) / 1e9;
    printer.finish(view.used_bytes(), view.used_bytes());
    if (o.json) {
        std::printf("%s\n", nlohmann::json({{"name", o.name},
                                            {"written_bytes", sum->written_bytes},
                                            {"skipped_bytes", sum->skipped_bytes},
                                            {"chunks_written", sum->chunks_written},
                                            {"chunks_skipped", sum->chunks_skipped},
                                            {"seconds", s}})
                                .dump()
                                .c_str());
    } else {
        std::printf("%s %s: %s written, %s already in place, %.1f s\n",
                    std::string_view(verb) == "export" ? "exported" : "restored", o.name.c_str(),
                    human_bytes(static_cast<double>(sum->written_bytes)).c_str(),
                    human_bytes(static_cast<double>(sum->skipped_bytes)).c_str(), s);
    }
    return 0;
}

int run_restore(const image_options& o) { return restore_to(o, o.disks, 0, "restore"); }

int run_export(const image_options& o) {
    std::uint64_t size = 0;
    if (!o.size.empty()) {
        auto s = parse_size_bytes(o.size);
        if (!s) {
            return fail(s.err());
        }
        size = *s;
    }
    struct stat st {};
    if (::stat(o.output.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && !o.resume) {
        return fail(error::format(errc::exists, 0, "{} exists: remove it first, or give --resume",
                                  o.output));
    }
    return restore_to(o, {o.output}, size, "export");
}

int run_verify(const image_options& o) {
    auto mode = progress_mode(o);
    if (!mode) {
        return fail(mode.err());
    }
    auto store = image::chunk_store::open(o.store, false);
    if (!store) {
        return fail(store.err());
    }
    std::vector<std::string> names = o.names;
    if (names.empty()) {
        auto all = (*store)->list();
        if (!all) {
            return fail(all.err());
        }
        names = *all;
    }
    int rc = 0;
    for (const auto& n : names) {
        auto m = (*store)->load(n);
        if (!m) {
            std::fprintf(stderr, "shoal image: %s\n", m.err().describe().c_str());
            rc = 1;
            continue;
        }
        progress_printer printer(*mode, "verify " + n);
        auto rep =
            image::verify_image(**store, *m, o.threads,
                                [&](std::uint64_t d, std::uint64_t t) { printer.update(d, t); });
        printer.finish(m->used_bytes(), m->used_bytes());
        if (!rep) {
            std::fprintf(stderr, "shoal image: %s\n", rep.err().describe().c_str());
            rc = 1;
            continue;
        }
        for (const auto& p : rep->problems) {
            std::fprintf(stderr, "shoal image: %s: %s\n", n.c_str(), p.c_str());
        }
        if (o.json) {
            std::printf("%s\n",
                        nlohmann::json(
                            {{"name", n}, {"chunks", rep->chunks}, {"bad_chunks", rep->bad_chunks}})
                            .dump()
                            .c_str());
        } else {
            std::printf("%s: %llu chunks, %llu bad%s\n", n.c_str(),
                        static_cast<unsigned long long>(rep->chunks),
                        static_cast<unsigned long long>(rep->bad_chunks),
                        rep->bad_chunks == 0 ? " — intact" : "");
        }
        rc = rep->bad_chunks == 0 ? rc : 1;
    }
    return rc;
}

nlohmann::json manifest_json(const image::manifest& m, bool detail) {
    nlohmann::json j = {{"name", m.name},
                        {"type", image::kind_name(m.kind)},
                        {"created", when(m.created_unix_s)},
                        {"description", m.description},
                        {"used_bytes", m.used_bytes()},
                        {"stored_bytes", m.stored_bytes()},
                        {"disks", nlohmann::json::array()}};
    for (const auto& d : m.disks) {
        nlohmann::json jd = {{"index", d.index},
                             {"size_bytes", d.size_bytes},
                             {"source", d.source},
                             {"minimum_size_bytes", image::minimum_disk_size(m, d)},
                             {"table", d.table.kind == image::table_kind::gpt   ? "gpt"
                                       : d.table.kind == image::table_kind::mbr ? "mbr"
                                                                                : "none"},
                             {"table_id", d.table.id},
                             {"partitions", nlohmann::json::array()},
                             {"regions", nlohmann::json::array()}};
        for (const auto& e : d.table.entries) {
            jd["partitions"].push_back({{"number", e.number},
                                        {"start_bytes", e.start_bytes},
                                        {"size_bytes", e.size_bytes},
                                        {"type", e.type},
                                        {"uuid", e.uuid},
                                        {"name", e.name},
                                        {"bootable", e.bootable}});
        }
        for (const auto& r : d.regions) {
            nlohmann::json jr = {
                {"partition", r.partition_number},  {"offset_bytes", r.offset_bytes},
                {"size_bytes", r.size_bytes},       {"fs", image::fs_name(r.fs)},
                {"fs_size_bytes", r.fs_size_bytes}, {"minimum_size_bytes", r.minimum_size_bytes},
                {"used_bytes", r.used_bytes()},     {"extents", r.used.size()},
                {"chunks", r.chunks.size()},        {"label", r.label}};
            if (detail) {
                jr["chunk_list"] = nlohmann::json::array();
                for (const auto& c : r.chunks) {
                    jr["chunk_list"].push_back({{"stored_sha256", image::to_hex(c.stored_sha256)},
                                                {"raw_sha256", image::to_hex(c.raw_sha256)},
                                                {"stored_size", c.stored_size},
                                                {"raw_size", c.raw_size}});
                }
            }
            jd["regions"].push_back(jr);
        }
        j["disks"].push_back(jd);
    }
    return j;
}

int run_list(const image_options& o) {
    auto store = image::chunk_store::open(o.store, false);
    if (!store) {
        return fail(store.err());
    }
    auto names = (*store)->list();
    if (!names) {
        return fail(names.err());
    }
    nlohmann::json all = nlohmann::json::array();
    if (!o.json) {
        std::printf("%-24s %-10s %5s %12s %12s  %s\n", "NAME", "TYPE", "DISKS", "USED", "STORED",
                    "CREATED");
    }
    int rc = 0;
    for (const auto& n : *names) {
        auto m = (*store)->load(n);
        if (!m) {
            std::fprintf(stderr, "shoal image: %s\n", m.err().describe().c_str());
            rc = 1;
            continue;
        }
        if (o.json) {
            all.push_back(manifest_json(*m, false));
        } else {
            std::printf("%-24s %-10s %5zu %12s %12s  %s\n", m->name.c_str(),
                        std::string(image::kind_name(m->kind)).c_str(), m->disks.size(),
                        human_bytes(static_cast<double>(m->used_bytes())).c_str(),
                        human_bytes(static_cast<double>(m->stored_bytes())).c_str(),
                        when(m->created_unix_s).c_str());
        }
    }
    if (o.json) {
        std::printf("%s\n", all.dump(2).c_str());
    }
    return rc;
}

int run_info(const image_options& o) {
    auto store = image::chunk_store::open(o.store, false);
    if (!store) {
        return fail(store.err());
    }
    auto m = (*store)->load(o.name);
    if (!m) {
        return fail(m.err());
    }
    if (o.json) {
        std::printf("%s\n", manifest_json(*m, true).dump(2).c_str());
        return 0;
    }
    std::printf("image %s (%s), created %s\n", m->name.c_str(),
                std::string(image::kind_name(m->kind)).c_str(), when(m->created_unix_s).c_str());
    if (!m->description.empty()) {
        std::printf("  %s\n", m->description.c_str());
    }
    std::printf("  %s used, %s stored\n", human_bytes(static_cast<double>(m->used_bytes())).c_str(),
                human_bytes(static_cast<double>(m->stored_bytes())).c_str());
    for (const auto& d : m->disks) {
        std::printf("disk %u: %s from %s, table %s %s; restores onto %s or more\n", d.index,
                    human_bytes(static_cast<double>(d.size_bytes)).c_str(), d.source.c_str(),
                    d.table.kind == image::table_kind::gpt   ? "gpt"
                    : d.table.kind == image::table_kind::mbr ? "mbr"
                                                             : "none",
                    d.table.id.c_str(),
                    human_bytes(static_cast<double>(image::minimum_disk_size(*m, d))).c_str());
        for (const auto& r : d.regions) {
            std::printf(
                "  %-9s %-6s at %-12llu size %-10s fs %-10s min %-10s used %-10s %zu chunks %s\n",
                r.partition_number == 0 ? "head"
                                        : fmt::format("part {}", r.partition_number).c_str(),
                std::string(image::fs_name(r.fs)).c_str(),
                static_cast<unsigned long long>(r.offset_bytes),
                human_bytes(static_cast<double>(r.size_bytes)).c_str(),
                human_bytes(static_cast<double>(r.fs_size_bytes)).c_str(),
                human_bytes(static_cast<double>(r.minimum_size_bytes)).c_str(),
                human_bytes(static_cast<double>(r.used_bytes())).c_str(), r.chunks.size(),
                r.label.c_str());
        }
    }
    return 0;
}

int run_rm(const image_options& o) {
    auto store = image::chunk_store::open(o.store, false, image::chunk_store::lock_mode::exclusive);
    if (!store) {
        return fail(store.err());
    }
    std::uint64_t freed = 0;
    for (const auto& n : o.names) {
        auto f = (*store)->remove(n);
        if (!f) {
            return fail(f.err());
        }
        freed += *f;
    }
    std::printf("removed %zu image(s), freed %s of chunks no image uses\n", o.names.size(),
                human_bytes(static_cast<double>(freed)).c_str());
    return 0;
}

}  // namespace

void add_image_command(CLI::App& app, command_set& commands) {
    auto o = std::make_shared<image_options>();
    auto* image =
        app.add_subcommand("image", "capture, restore and manage disk images in a chunk store");
    image->require_subcommand(1);
    auto common = [&](CLI::App* sub) {
        sub->add_option(
               "--store", o->store,
               "the chunk store's directory (default $SHOAL_STORE or /var/lib/shoal/images)")
            ->capture_default_str();
        sub->add_option("--progress", o->progress, "auto, human, json (lines on stdout) or none")
            ->capture_default_str();
        sub->add_flag("--json", o->json, "the result as JSON on stdout");
        sub->add_option("--threads", o->threads,
                        "compression/decompression threads (0: every core)");
    };
    auto* capture =
        image->add_subcommand("capture", "capture disks (devices or files) into an image");
    common(capture);
    capture->add_option("--disk", o->disks, "disk to capture (repeat for all-disks)")->required();
    capture->add_option("--name", o->name, "image name")->required();
    capture->add_option("--type", o->type, "resizable, multipart, all-disks or raw")
        ->capture_default_str();
    capture->add_option("--partitions", o->partitions, "multipart: only these partition numbers")
        ->delimiter(',');
    capture->add_flag("--no-shrink", o->no_shrink,
                      "resizable: do not shrink the source's filesystems first");
    capture->add_option("--chunk-size", o->chunk_size, "raw bytes per chunk")
        ->capture_default_str();
    capture->add_option("--level", o->level, "zstd level")->capture_default_str();
    capture->add_option("--description", o->description, "free text kept with the image");
    auto remote = [&](CLI::App* sub, const char* what) {
        sub->add_option("--server", o->server,
                        fmt::format("{} shoald's store over HTTP (its URL) instead of --store",
                                    what));
        sub->add_option("--token", o->token, "with --server: API token (default $SHOAL_TOKEN)");
        sub->add_option("--task-key", o->task_key, "with --server: a task's key instead");
    };
    remote(capture, "capture into");

    auto* restore =
        image->add_subcommand("restore", "restore an image onto disks (devices or files)");
    common(restore);
    restore->add_option("--name", o->name, "image name")->required();
    restore->add_option("--disk", o->disks, "target disk (repeat for each disk of the image)")
        ->required();
    restore->add_flag("--resume", o->resume,
                      "keep what is already on the target and verified by hash");
    remote(restore, "restore from");

    auto* exp = image->add_subcommand("export", "write one disk of an image to a raw disk file");
    common(exp);
    exp->add_option("--name", o->name, "image name")->required();
    exp->add_option("--output", o->output, "raw disk file to write")->required();
    exp->add_option("--disk-index", o->disk_index, "which disk of the image")
        ->capture_default_str();
    exp->add_option("--size", o->size, "file size (default: the captured disk's)");
    exp->add_flag("--resume", o->resume, "continue an interrupted export");

    auto* verify =
        image->add_subcommand("verify", "check every chunk of images against their hashes");
    common(verify);
    verify->add_option("names", o->names, "images (default: all)");

    auto* list = image->add_subcommand(
        "list", "list the images in the store (with --server: the images shoald knows)");
    common(list);
    auto api = std::make_shared<api_options>();
    list->add_option("--server", api->server,
                     "list the images shoald knows, over its REST API, instead");
    list->add_option("--token", api->token, "API token (default $SHOAL_TOKEN)");
    auto* info = image->add_subcommand("info", "show an image's disks, partitions and sizes");
    common(info);
    info->add_option("name", o->name, "image name")->required();
    auto* rm = image->add_subcommand("rm", "remove images and the chunks no other image uses");
    common(rm);
    rm->add_option("names", o->names, "images to remove")->required();

    commands.add(image, [o, api, capture, restore, exp, verify, list, info, rm] {
        if (capture->parsed()) {
            return run_capture(*o);
        }
        if (restore->parsed()) {
            return run_restore(*o);
        }
        if (exp->parsed()) {
            return run_export(*o);
        }
        if (verify->parsed()) {
            return run_verify(*o);
        }
        if (list->parsed() && !api->server.empty()) {
            api->json = o->json;
            if (api->token.empty() && std::getenv("SHOAL_TOKEN") != nullptr) {
                api->token = std::getenv("SHOAL_TOKEN");
            }
            return run_api_image_list(*api);
        }
        if (list->parsed()) {
            return run_list(*o);
        }
        if (info->parsed()) {
            return run_info(*o);
        }
        if (rm->parsed()) {
            return run_rm(*o);
        }
        return 2;
    });
}

}  // namespace shoal::cli
