// shoal image import-fog DIR --name N: converts a FOG Project image directory (partclone
// streams, gzip/pigz or zstd, whole or split; d1.mbr, d1.partitions, …) into a shoal image.
// Nothing is published unless every stream was read to its end and every checksum passed.
#include <algorithm>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/clock.h"
#include "fog/fog_dir.h"
#include "fog/importer.h"
#include "image/store.h"
#include "progress.h"
#include "transfer_options.h"

namespace shoal::cli {
namespace {

struct import_options {
    std::string dir;
    std::string name;
    std::string store = image::default_store_path();
    std::string progress = "auto";
    std::string chunk_size = "4M";
    int level = image::zstd_level_default;
    unsigned threads = 0;
    std::string description;
    bool dry_run = false;
    bool json = false;
};

int fail(const error& e) {
    std::fprintf(stderr, "shoal image import-fog: %s\n", e.describe().c_str());
    return 1;
}

nlohmann::json plan_json(const fog::fog_image& fog, const fog::import_plan& plan) {
    nlohmann::json regions = nlohmann::json::array();
    for (const fog::import_region& r : plan.regions) {
        regions.push_back({{"disk", r.disk},
                           {"partition", r.partition},
                           {"offset_bytes", r.offset_bytes},
                           {"size_bytes", r.size_bytes},
                           {"what", r.what},
                           {"used_bytes", r.used_bytes}});
    }
    return {{"dir", fog.dir},
            {"fog_kind", std::string(fog::fog_image_kind_name(fog.kind))},
            {"kind", std::string(image::kind_name(plan.kind))},
            {"used_bytes", plan.used_bytes},
            {"regions", regions},
            {"notes", plan.notes}};
}

void print_plan(const fog::fog_image& fog, const fog::import_plan& plan) {
    std::printf("FOG image %s: %s -> %s image, %s of used data\n", fog.dir.c_str(),
                std::string(fog::fog_image_kind_name(fog.kind)).c_str(),
                std::string(image::kind_name(plan.kind)).c_str(),
                human_bytes(static_cast<double>(plan.used_bytes)).c_str());
    for (const fog::import_region& r : plan.regions) {
        const std::string where = r.partition != 0 ? fmt::format("partition {}", r.partition)
                                  : plan.kind == image::image_kind::raw ? std::string("whole disk")
                                                                        : std::string("head");
        std::printf("  disk %u %s at %llu: %s, %s used\n", r.disk, where.c_str(),
                    static_cast<unsigned long long>(r.offset_bytes), r.what.c_str(),
                    human_bytes(static_cast<double>(r.used_bytes)).c_str());
    }
    for (const std::string& n : plan.notes) {
        std::printf("  note: %s\n", n.c_str());
    }
}

int run_import(const import_options& o) {
    auto mode = progress_printer::parse_mode(o.progress);
    if (!mode) {
        return fail(mode.err());
    }
    auto chunk = parse_size_bytes(o.chunk_size);
    if (!chunk) {
        return fail(chunk.err());
    }
    auto fog = fog::read_fog_image(o.dir);
    if (!fog) {
        return fail(fog.err());
    }
    // Every header and bitmap first: a broken stream is found before anything is stored.
    auto plan = fog::plan_fog_import(*fog);
    if (!plan) {
        return fail(plan.err());
    }
    if (o.dry_run) {
        if (o.json) {
            std::printf("%s\n", plan_json(*fog, *plan).dump().c_str());
        } else {
            print_plan(*fog, *plan);
        }
        return 0;
    }
    if (!o.json) {
        print_plan(*fog, *plan);
        std::fflush(stdout);
    }
    auto store = image::chunk_store::open(o.store, true);
    if (!store) {
        return fail(store.err());
    }
    progress_printer printer(*mode, "import " + o.name);
    image::build_options b;
    b.threads = o.threads;
    b.zstd_level = o.level;
    b.chunk_size_bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(*chunk, UINT32_MAX));
    b.description = o.description;
    const std::uint64_t total = plan->used_bytes;
    b.on_progress = [&](std::uint64_t done) { printer.update(done, total); };
    const std::int64_t start = time::monotonic_ns();
    auto m = fog::import_fog_image(**store, *fog, o.name, std::move(b));
    if (!m) {
        printer.finish(0, 0);
        return fail(m.err());
    }
    const double s = static_cast<double>(time::monotonic_ns() - start) / 1e9;
    printer.finish(m->used_bytes(), m->used_bytes());
    if (o.json) {
        nlohmann::json j = plan_json(*fog, *plan);
        j["name"] = m->name;
        j["stored_bytes"] = m->stored_bytes();
        j["seconds"] = s;
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("imported %s as %s: %s used, %s stored, %.1f s (%s)\n", o.dir.c_str(),
                    m->name.c_str(), human_bytes(static_cast<double>(m->used_bytes())).c_str(),
                    human_bytes(static_cast<double>(m->stored_bytes())).c_str(), s,
                    human_rate(static_cast<double>(m->used_bytes()) / s).c_str());
    }
    return 0;
}

// The `image` command, whoever registered it first.
CLI::App* image_app(CLI::App& app) {
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        if (sub->get_name() == "image") {
            return sub;
        }
    }
    CLI::App* image = app.add_subcommand("image", "capture, restore and manage disk images");
    image->require_subcommand(1);
    return image;
}

}  // namespace

void add_image_import_command(CLI::App& app, command_set& commands) {
    auto o = std::make_shared<import_options>();
    CLI::App* sub = image_app(app)->add_subcommand(
        "import-fog", "convert a FOG Project image directory into a shoal image");
    sub->add_option("dir", o->dir, "the FOG image directory, e.g. /images/win10")->required();
    sub->add_option("--name", o->name, "name of the new image")->required();
    sub->add_option("--store", o->store,
                    "the chunk store's directory (default $SHOAL_STORE or /var/lib/shoal/images)")
        ->capture_default_str();
    sub->add_option("--progress", o->progress, "auto, human, json (lines on stdout) or none")
        ->capture_default_str();
    sub->add_flag("--json", o->json, "the plan and the result as JSON on stdout");
    sub->add_option("--threads", o->threads, "compression threads (0: every core)");
    sub->add_option("--chunk-size", o->chunk_size, "raw bytes per chunk")->capture_default_str();
    sub->add_option("--level", o->level, "zstd level")->capture_default_str();
    sub->add_option("--description", o->description,
                    "free text kept with the image (default: where it came from)");
    sub->add_flag("--dry-run", o->dry_run,
                  "read the directory and every stream's header and bitmap, store nothing");
    commands.add(sub, [o] { return run_import(*o); });
}

}  // namespace shoal::cli
