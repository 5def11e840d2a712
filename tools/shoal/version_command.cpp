#include <cstdio>

#include "build_config.h"
#include "commands.h"

namespace shoal::cli {

void add_version_command(CLI::App& app, command_set& commands) {
    auto* sub = app.add_subcommand("version", "print the version and what this build includes");
    commands.add(sub, [] {
        std::printf("shoal %s\n", SHOAL_VERSION);
        std::printf("  DPDK data path: %s\n", SHOAL_HAVE_DPDK ? "yes" : "no (built without libdpdk)");
        std::printf("  build: %s\n", SHOAL_BUILDTYPE);
        return 0;
    });
}

}  // namespace shoal::cli
