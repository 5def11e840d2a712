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

    // Runs the chosen subcommand; returns its exit code.
    int run(const CLI::App& app) const {
        for (const auto& [sub, fn] : _entries) {
            if (app.got_subcommand(sub)) {
                return fn();
            }
        }
        return 2;
    }

private:
    std::vector<std::pair<CLI::App*, std::function<int()>>> _entries;
};

void add_version_command(CLI::App& app, command_set& commands);
void add_send_command(CLI::App& app, command_set& commands);
void add_recv_command(CLI::App& app, command_set& commands);
void add_boot_command(CLI::App& app, command_set& commands);

}  // namespace shoal::cli
