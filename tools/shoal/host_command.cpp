// shoal host: the hosts a shoald knows, over its REST API (list, add, show, rm, and FOG's
// CSV import, all or nothing).
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "api_client.h"
#include "commands.h"
#include "common/file.h"

namespace shoal::cli {

namespace {

struct host_options {
    api_options api;
    std::string ref;  // id, MAC or name
    std::string mac;
    std::string name;
    std::string description;
    std::string image;
    std::string file;
    bool pending = false;
};

constexpr std::size_t csv_size_max = 64u << 20;

void print_hosts(const nlohmann::json& items) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& h : items) {
        rows.push_back({cell(h["id"]), cell(h["mac"]), cell(h["name"]), cell(h["image_id"]),
                        h.value("pending", false) ? "pending" : "", cell(h["last_seen_at"]),
                        cell(h["description"])});
    }
    print_table({"ID", "MAC", "NAME", "IMAGE", "STATE", "LAST_SEEN", "DESCRIPTION"}, rows);
}

int run_list(const host_options& o) {
    api_reply r;
    std::string path = "/hosts?limit=1000";
    if (o.pending) {
        path += "&pending=true";
    }
    if (!api_ok(o.api, "GET", path, r, "host list")) {
        return 1;
    }
    if (o.api.json) {
        std::puts(r.body.dump(2).c_str());
        return 0;
    }
    print_hosts(r.body["items"]);
    if (r.body.value("total", 0) > static_cast<long>(r.body["items"].size())) {
        std::printf("(%zu of %s shown)\n", r.body["items"].size(), cell(r.body["total"]).c_str());
    }
    return 0;
}

int run_add(const host_options& o) {
    nlohmann::json body = {{"mac", o.mac}, {"name", o.name}};
    if (!o.description.empty()) {
        body["description"] = o.description;
    }
    if (!o.image.empty()) {
        auto id = image_id(o.api, o.image);
        if (!id) {
            std::fprintf(stderr, "shoal: host add: %s\n", id.err().describe().c_str());
            return 1;
        }
        body["image_id"] = *id;
    }
    api_reply r;
    if (!api_ok(o.api, "POST", "/hosts", r, "host add", body.dump())) {
        return 1;
    }
    if (o.api.json) {
        std::puts(r.body.dump(2).c_str());
    } else {
        std::printf("host %s: %s %s\n", cell(r.body["id"]).c_str(), cell(r.body["mac"]).c_str(),
                    cell(r.body["name"]).c_str());
    }
    return 0;
}

int run_show_or_rm(const host_options& o, bool remove) {
    auto path = host_path(o.api, o.ref);
    if (!path) {
        std::fprintf(stderr, "shoal: host: %s\n", path.err().describe().c_str());
        return 1;
    }
    api_reply r;
    if (!api_ok(o.api, remove ? "DELETE" : "GET", *path, r, remove ? "host rm" : "host show")) {
        return 1;
    }
    if (remove) {
        std::printf("removed host %s\n", o.ref.c_str());
    } else {
        std::puts(r.body.dump(2).c_str());
    }
    return 0;
}

int run_import(const host_options& o) {
    auto bytes = read_file(o.file, csv_size_max);
    if (!bytes) {
        std::fprintf(stderr, "shoal: host import: %s\n", bytes.err().describe().c_str());
        return 1;
    }
    std::string text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    api_reply r;
    if (!api_ok(o.api, "POST", "/hosts/import", r, "host import " + o.file, text, "text/csv")) {
        std::fprintf(stderr, "nothing was imported\n");
        return 1;
    }
    std::printf("imported %s host(s) from %s\n", cell(r.body["imported"]).c_str(), o.file.c_str());
    return 0;
}

}  // namespace

void add_host_command(CLI::App& app, command_set& commands) {
    auto o = std::make_shared<host_options>();
    auto* host = app.add_subcommand("host", "the hosts shoald knows (over its REST API)");
    host->require_subcommand(1);
    auto* list = host->add_subcommand("list", "list hosts");
    list->add_flag("--pending", o->pending, "only hosts that registered themselves");
    auto* add = host->add_subcommand("add", "add a host");
    add->add_option("mac", o->mac, "its MAC, e.g. 00:12:3F:C4:57:0C")->required();
    add->add_option("name", o->name, "its name ([A-Za-z0-9._-], up to 63)")->required();
    add->add_option("--description", o->description, "free text");
    add->add_option("--image", o->image, "the image assigned to it (name or id)");
    auto* show = host->add_subcommand("show", "show a host");
    show->add_option("host", o->ref, "its id, MAC or name")->required();
    auto* rm = host->add_subcommand("rm", "remove a host");
    rm->add_option("host", o->ref, "its id, MAC or name")->required();
    auto* import = host->add_subcommand(
        "import",
        "import FOG's host CSV (\"MAC\",\"Hostname\",\"\",\"Description\",\"OS\","
        "\"Image\"): every line or none");
    import->add_option("file", o->file, "the CSV file")->required()->check(CLI::ExistingFile);
    for (auto* sub : {list, add, show, rm, import}) {
        add_api_options(sub, o->api);
    }
    commands.add(host, [o, list, add, show, rm, import] {
        if (list->parsed()) {
            return run_list(*o);
        }
        if (add->parsed()) {
            return run_add(*o);
        }
        if (show->parsed() || rm->parsed()) {
            return run_show_or_rm(*o, rm->parsed());
        }
        if (import->parsed()) {
            return run_import(*o);
        }
        return 2;
    });
}

}  // namespace shoal::cli
