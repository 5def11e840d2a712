// How subcommands plug into the shoal tool: each add_*_command registers its options on the
// CLI11 app and the function to run when that subcommand is chosen.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace shoal::cli {

class command_set {
public:
    void add(CLI::App* sub, std::function<int()> run) { _entries.emplace_back(sub, std::move(run)); }

    // Runs the chosen subcommand; returns its exit code. Subcommands may nest (`shoal image
    // import-fog`): the last parsed entry wins, so one added after its parent's is chosen.
    int run(const CLI::App& /*app*/) const {
        const std::function<int()>* chosen = nullptr;
        for (const auto& [sub, fn] : _entries) {
            if (sub->parsed()) {
                chosen = &fn;
            }
        }
        return chosen != nullptr ? (*chosen)() : 2;
    }

private:
    std::vector<std::pair<CLI::App*, std::function<int()>>> _entries;
};

void add_version_command(CLI::App& app, command_set& commands);
void add_send_command(CLI::App& app, command_set& commands);
void add_recv_command(CLI::App& app, command_set& commands);
void add_image_command(CLI::App& app, command_set& commands);
// `shoal image import-fog`: under `image`, after add_image_command (or alone).
void add_image_import_command(CLI::App& app, command_set& commands);
void add_boot_command(CLI::App& app, command_set& commands);
// Over shoald's REST API (api_client.h): `shoal host ...`, `shoal task ...`, `shoal group ...`.
void add_host_command(CLI::App& app, command_set& commands);
void add_task_command(CLI::App& app, command_set& commands);

}  // namespace shoal::cli
