// shoal image import-fog DIR --name N: converts a FOG Project image directory (partclone
// streams, gzip/pigz or zstd, whole or split; d1.mbr, d1.partitions, …) into a shoal image.
// Nothing is published unless every stream was read to its end and every checksum passed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "fog/fog_dir.h"
#include "fog/importer.h"
#include "image/store.h"
#include "transfer_options.h"

namespace shoal::cli {
namespace {

struct import_options {
    std::string dir;
    std::string name;
    std::string store;
    unsigned threads = 0;
    bool dry_run = false;
    bool json = false;
    bool quiet = false;
};

// Progress for people on a terminal (one line, redrawn), for logs (a line every 10 s) or
// for scripts (--json: one object per second, then the result).
class progress_printer {
public:
    progress_printer(std::uint64_t total_bytes, bool json, bool quiet)
        : _total(total_bytes),
          _json(json),
          _quiet(quiet),
          _tty(::isatty(STDERR_FILENO) != 0),
          _start(std::chrono::steady_clock::now()),
          _last(_start) {}

    void update(std::uint64_t done_bytes) {
        const auto now = std::chrono::steady_clock::now();
        const auto every = _json  ? std::chrono::seconds(1)
                           : _tty ? std::chrono::milliseconds(200)
                                  : std::chrono::seconds(10);
        if (_quiet || now - _last < every) {
            return;
        }
        _last = now;
        const double s = std::chrono::duration<double>(now - _start).count();
        const double rate = s > 0 ? static_cast<double>(done_bytes) / s : 0;
        const double eta =
            rate > 0 ? static_cast<double>(_total - std::min(done_bytes, _total)) / rate : 0;
        if (_json) {
            nlohmann::json j = {{"event", "progress"},
                                {"done_bytes", done_bytes},
                                {"total_bytes", _total},
                                {"rate_bytes_per_s", rate},
                                {"eta_s", eta}};
            std::printf("%s\n", j.dump().c_str());
            std::fflush(stdout);
            return;
        }
        std::fprintf(stderr, "%s%s / %s  %s  ETA %d:%02d%s", _tty ? "\r  " : "  ",
                     human_bytes(static_cast<double>(done_bytes)).c_str(),
                     human_bytes(static_cast<double>(_total)).c_str(), human_rate(rate).c_str(),
                     static_cast<int>(eta) / 60, static_cast<int>(eta) % 60, _tty ? "   " : "\n");
        _drawn = _tty;
    }
    void finish() {
        if (_drawn) {
            std::fprintf(stderr, "\n");
        }
    }
    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - _start).count();
    }

private:
    std::uint64_t _total;
    bool _json;
    bool _quiet;
    bool _tty;
    bool _drawn = false;
    std::chrono::steady_clock::time_point _start;
    std::chrono::steady_clock::time_point _last;
};

int fail(const import_options& o, const error& e) {
    if (o.json) {
        nlohmann::json j = {{"event", "error"},
                            {"error", std::string(errc_name(e.code()))},
                            {"message", e.describe()}};
        std::printf("%s\n", j.dump().c_str());
    }
    std::fprintf(stderr, "shoal image import-fog: %s\n", e.describe().c_str());
    return 1;
}

int run_import(const import_options& o) {
    auto fog = fog::read_fog_image(o.dir);
    if (!fog) {
        return fail(o, fog.err());
    }
    // Every header and bitmap first: a broken stream is found before anything is stored.
    auto plan = fog::plan_fog_import(*fog);
    if (!plan) {
        return fail(o, plan.err());
    }
    if (!o.json && !o.quiet) {
        std::fprintf(stderr, "FOG image %s: %s, %s of used data\n", o.dir.c_str(),
                     std::string(fog::fog_image_kind_name(fog->kind)).c_str(),
                     human_bytes(static_cast<double>(plan->used_bytes)).c_str());
        for (const fog::import_region& r : plan->regions) {
            std::fprintf(
                stderr, "  disk %u %s at %llu: %s, %s used\n", r.disk,
                r.partition == 0 ? "head" : fmt::format("partition {}", r.partition).c_str(),
                static_cast<unsigned long long>(r.offset_bytes), r.what.c_str(),
                human_bytes(static_cast<double>(r.used_bytes)).c_str());
        }
        for (const std::string& n : plan->notes) {
            std::fprintf(stderr, "  note: %s\n", n.c_str());
        }
    }
    if (o.dry_run) {
        if (o.json) {
            nlohmann::json regions = nlohmann::json::array();
            for (const fog::import_region& r : plan->regions) {
                regions.push_back({{"disk", r.disk},
                                   {"partition", r.partition},
                                   {"offset_bytes", r.offset_bytes},
                                   {"size_bytes", r.size_bytes},
                                   {"what", r.what},
                                   {"used_bytes", r.used_bytes}});
            }
            nlohmann::json j = {{"event", "plan"},
                                {"kind", std::string(fog::fog_image_kind_name(fog->kind))},
                                {"used_bytes", plan->used_bytes},
                                {"regions", regions},
                                {"notes", plan->notes}};
            std::printf("%s\n", j.dump().c_str());
        }
        return 0;
    }
    auto store = image::chunk_store::open(o.store, true);
    if (!store) {
        return fail(o, store.err());
    }
    progress_printer progress(plan->used_bytes, o.json, o.quiet);
    image::build_options b;
    b.threads = o.threads;
    b.on_progress = [&](std::uint64_t done) { progress.update(done); };
    auto m = fog::import_fog_image(**store, *fog, o.name, std::move(b));
    progress.finish();
    if (!m) {
        return fail(o, m.err());
    }
    const double s = progress.seconds();
    const double rate = s > 0 ? static_cast<double>(m->used_bytes()) / s : 0;
    if (o.json) {
        nlohmann::json j = {{"event", "done"},
                            {"name", m->name},
                            {"kind", std::string(image::kind_name(m->kind))},
                            {"used_bytes", m->used_bytes()},
                            {"stored_bytes", m->stored_bytes()},
                            {"seconds", s},
                            {"rate_bytes_per_s", rate}};
        std::printf("%s\n", j.dump().c_str());
    } else if (!o.quiet) {
        std::fprintf(stderr, "imported %s as image %s: %s used, %s stored, %.1f s (%s)\n",
                     o.dir.c_str(), m->name.c_str(),
                     human_bytes(static_cast<double>(m->used_bytes())).c_str(),
                     human_bytes(static_cast<double>(m->stored_bytes())).c_str(), s,
                     human_rate(rate).c_str());
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
    o->store = image::default_store_path();
    CLI::App* sub = image_app(app)->add_subcommand(
        "import-fog", "convert a FOG Project image directory into a shoal image");
    sub->add_option("dir", o->dir, "the FOG image directory, e.g. /images/win10")->required();
    sub->add_option("--name", o->name, "name of the new image")->required();
    sub->add_option("--store", o->store,
                    "chunk store directory (default: $SHOAL_STORE or "
                    "/var/lib/shoal/images)");
    sub->add_option("--threads", o->threads, "compression threads (default: every core)");
    sub->add_flag("--dry-run", o->dry_run,
                  "check the directory and every stream's header, store nothing");
    sub->add_flag("--json", o->json, "machine-readable progress and result on stdout");
    sub->add_flag("--quiet", o->quiet, "print errors only");
    commands.add(sub, [o] { return run_import(*o); });
}

}  // namespace shoal::cli
