// shoal: the command-line tool. Each subcommand lives in its own file and registers itself
// here; this file only parses the top level and sets up logging.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "common/log.h"

int main(int argc, char** argv) {
    CLI::App app{"shoal: network imaging — boot, capture, and multicast-deploy disk images"};
    app.require_subcommand(1);
    std::string log_level = "info";
    app.add_option("--log", log_level, "log level: trace, debug, info, warn, error, off")
        ->capture_default_str();

    shoal::cli::command_set commands;
    shoal::cli::add_version_command(app, commands);
    shoal::cli::add_send_command(app, commands);
    shoal::cli::add_recv_command(app, commands);
    shoal::cli::add_image_command(app, commands);
    shoal::cli::add_image_import_command(app, commands);
    shoal::cli::add_boot_command(app, commands);
    shoal::cli::add_host_command(app, commands);
    shoal::cli::add_task_command(app, commands);

    CLI11_PARSE(app, argc, argv);

    auto level = shoal::log::parse_level(log_level);
    if (!level) {
        std::fprintf(stderr, "shoal: %s\n", level.err().describe().c_str());
        return 2;
    }
    shoal::log::init(*level);
    return commands.run(app);
}
