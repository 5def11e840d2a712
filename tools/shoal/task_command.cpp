// shoal task and shoal group: tasks and host groups on a shoald, over its REST API.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_client.h"
#include "commands.h"

namespace shoal::cli {

namespace {

struct task_options {
    api_options api;
    std::string state;
    std::string kind;
    std::string host;
    std::string image;
    std::string shutdown;
    std::string disk;  // the agent's disk rule (docs/agent.md)
    bool wol = false;
    long long id = 0;
    std::string name;
    std::string description;
    std::vector<std::string> hosts;
};

void print_tasks(const nlohmann::json& items) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : items) {
        const auto& p = t["progress"];
        rows.push_back({cell(t["id"]), cell(t["kind"]), cell(t["host_id"]), cell(t["image_id"]),
                        cell(t["state"]), fmt::format("{:.1f}%", p.value("percent", 0.0)),
                        cell(p["rate_Bps"]), cell(p["message"])});
    }
    print_table({"ID", "KIND", "HOST", "IMAGE", "STATE", "DONE", "RATE_BPS", "MESSAGE"}, rows);
}

// Fills kind, image_id, shutdown and wol of a task body; false after printing why not.
bool task_fields(const task_options& o, nlohmann::json& body, const char* what) {
    body["kind"] = o.kind;
    if (!o.image.empty()) {
        auto id = image_id(o.api, o.image);
        if (!id) {
            std::fprintf(stderr, "shoal: %s: %s\n", what, id.err().describe().c_str());
            return false;
        }
        body["image_id"] = *id;
    }
    if (!o.shutdown.empty()) {
        body["shutdown"] = o.shutdown;
    }
    if (o.wol) {
        body["wol"] = true;
    }
    if (!o.disk.empty()) {
        body["disk"] = o.disk;
    }
    return true;
}

int run_task_list(const task_options& o) {
    std::string path = "/tasks?limit=1000";
    if (!o.state.empty()) {
        path += "&state=" + o.state;
    }
    api_reply r;
    if (!api_ok(o.api, "GET", path, r, "task list")) {
        return 1;
    }
    if (o.api.json) {
        std::puts(r.body.dump(2).c_str());
    } else {
        print_tasks(r.body["items"]);
    }
    return 0;
}

int run_task_create(const task_options& o) {
    auto host = host_path(o.api, o.host);
    if (!host) {
        std::fprintf(stderr, "shoal: task create: %s\n", host.err().describe().c_str());
        return 1;
    }
    api_reply h;
    if (!api_ok(o.api, "GET", *host, h, "task create")) {
        return 1;
    }
    nlohmann::json body = {{"host_id", h.body["id"]}};
    if (!task_fields(o, body, "task create")) {
        return 1;
    }
    api_reply r;
    if (!api_ok(o.api, "POST", "/tasks", r, "task create", body.dump())) {
        return 1;
    }
    if (o.api.json) {
        std::puts(r.body.dump(2).c_str());
    } else {
        std::printf("task %s: %s for host %s, %s\n", cell(r.body["id"]).c_str(),
                    cell(r.body["kind"]).c_str(), cell(h.body["name"]).c_str(),
                    cell(r.body["state"]).c_str());
    }
    return 0;
}

int run_task_cancel(const task_options& o) {
    api_reply r;
    if (!api_ok(o.api, "POST", fmt::format("/tasks/{}/cancel", o.id), r, "task cancel", "{}")) {
        return 1;
    }
    std::printf("task %lld: %s\n", o.id, cell(r.body["state"]).c_str());
    return 0;
}

int run_group_list(const task_options& o) {
    api_reply r;
    if (!api_ok(o.api, "GET", "/groups?limit=1000", r, "group list")) {
        return 1;
    }
    if (o.api.json) {
        std::puts(r.body.dump(2).c_str());
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& g : r.body["items"]) {
        rows.push_back({cell(g["id"]), cell(g["name"]), std::to_string(g["hosts"].size()),
                        cell(g["description"])});
    }
    print_table({"ID", "NAME", "HOSTS", "DESCRIPTION"}, rows);
    return 0;
}

int run_group_add(const task_options& o) {
    nlohmann::json ids = nlohmann::json::array();
    for (const auto& ref : o.hosts) {
        auto path = host_path(o.api, ref);
        api_reply h;
        if (!path) {
            std::fprintf(stderr, "shoal: group add: %s\n", path.err().describe().c_str());
            return 1;
        }
        if (!api_ok(o.api, "GET", *path, h, "group add")) {
            return 1;
        }
        ids.push_back(h.body["id"]);
    }
    nlohmann::json body = {{"name", o.name}, {"hosts", ids}};
    if (!o.description.empty()) {
        body["description"] = o.description;
    }
    api_reply r;
    if (!api_ok(o.api, "POST", "/groups", r, "group add", body.dump())) {
        return 1;
    }
    std::printf("group %s: %s with %zu host(s)\n", cell(r.body["id"]).c_str(), o.name.c_str(),
                ids.size());
    return 0;
}

int run_group_task(const task_options& o) {
    nlohmann::json body;
    if (!task_fields(o, body, "group task")) {
        return 1;
    }
    api_reply r;
    if (!api_ok(o.api, "POST", fmt::format("/groups/{}/tasks", o.id), r, "group task",
                body.dump())) {
        return 1;
    }
    if (o.api.json) {
        std::puts(r.body.dump(2).c_str());
    } else {
        print_tasks(r.body["items"]);
    }
    return 0;
}

void task_template_options(CLI::App* sub, task_options& o) {
    sub->add_option("--image", o.image, "the image (name or id) for capture, deploy, multicast");
    sub->add_option("--shutdown", o.shutdown, "at the end: reboot (default), poweroff or none");
    sub->add_flag("--wol", o.wol, "wake the host(s) with Wake-on-LAN");
}

}  // namespace

void add_task_command(CLI::App& app, command_set& commands) {
    auto o = std::make_shared<task_options>();
    auto* task = app.add_subcommand("task", "tasks on shoald (over its REST API)");
    task->require_subcommand(1);
    auto* list = task->add_subcommand("list", "list tasks");
    list->add_option("--state", o->state,
                     "only tasks in this state: queued, active, in_progress, complete, failed, "
                     "cancelled");
    auto* create = task->add_subcommand("create", "make a task for a host");
    create
        ->add_option("kind", o->kind,
                     "capture, deploy, multicast, wipe_fast, wipe_normal, wipe_full, "
                     "disk_test, inventory, wol, debug")
        ->required();
    create->add_option("host", o->host, "the host's id, MAC or name")->required();
    create->add_option("--disk", o->disk,
                       "which disk: auto (default), nvme, sata, virtio, usb, largest, smallest, "
                       "serial:X, /dev/X");
    task_template_options(create, *o);
    auto* cancel = task->add_subcommand("cancel", "cancel a task");
    cancel->add_option("id", o->id, "the task's id")->required();
    for (auto* sub : {list, create, cancel}) {
        add_api_options(sub, o->api);
    }
    commands.add(task, [o, list, create, cancel] {
        if (list->parsed()) {
            return run_task_list(*o);
        }
        if (create->parsed()) {
            return run_task_create(*o);
        }
        if (cancel->parsed()) {
            return run_task_cancel(*o);
        }
        return 2;
    });

    auto* group = app.add_subcommand("group", "host groups on shoald (over its REST API)");
    group->require_subcommand(1);
    auto* glist = group->add_subcommand("list", "list groups");
    auto* gadd = group->add_subcommand("add", "make a group");
    gadd->add_option("name", o->name, "its name")->required();
    gadd->add_option("hosts", o->hosts, "its hosts: ids, MACs or names");
    gadd->add_option("--description", o->description, "free text");
    auto* gtask = group->add_subcommand("task", "a task for every host of a group (all or none)");
    gtask->add_option("id", o->id, "the group's id")->required();
    gtask->add_option("kind", o->kind, "the task kind, e.g. multicast")->required();
    task_template_options(gtask, *o);
    for (auto* sub : {glist, gadd, gtask}) {
        add_api_options(sub, o->api);
    }
    commands.add(group, [o, glist, gadd, gtask] {
        if (glist->parsed()) {
            return run_group_list(*o);
        }
        if (gadd->parsed()) {
            return run_group_add(*o);
        }
        if (gtask->parsed()) {
            return run_group_task(*o);
        }
        return 2;
    });
}

}  // namespace shoal::cli
