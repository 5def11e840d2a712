// A DHCP server from the command line, for the netns tests and the benchmark (the daemon
// proper is `shoal boot`). Serves until SIGTERM/SIGINT, then prints its counters as JSON.
//   dhcp_serve --mode full -i eth0 --pool 10.77.2.10-10.77.2.50 --reserve MAC=IP[=NAME]
//              --leases FILE [--router IP] [--dns IP] [--log debug]
//   dhcp_serve --mode proxy -i eth0
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "dhcp/server.h"

int main(int argc, char** argv) {
    using namespace shoal;
    CLI::App app{"shoal DHCP server (test driver)"};
    std::string mode_name = "proxy", pool_text, router, dns, log_level = "info";
    std::vector<std::string> reservations;
    dhcp::config cfg;
    app.add_option("--mode", mode_name)->check(CLI::IsMember({"full", "proxy"}));
    app.add_option("-i,--interface", cfg.interfaces)->required();
    app.add_option("--pool", pool_text, "FIRST-LAST");
    app.add_option("--reserve", reservations, "MAC=IP[=HOSTNAME]");
    app.add_option("--leases", cfg.leases_path);
    app.add_option("--lease-time", cfg.lease_time_s);
    app.add_option("--router", router);
    app.add_option("--dns", dns);
    app.add_option("--bios-file", cfg.boot_files.bios);
    app.add_option("--uefi-file", cfg.boot_files.uefi_x64);
    app.add_option("--script-url", cfg.ipxe_script_url);
    app.add_option("--log", log_level);
    CLI11_PARSE(app, argc, argv);
    auto level = log::parse_level(log_level);
    log::init(level ? *level : log::level::info);

    cfg.mode = mode_name == "full" ? dhcp::mode::full : dhcp::mode::proxy;
    if (!pool_text.empty()) {
        auto dash = pool_text.find('-');
        auto first = dhcp::parse_ipv4(pool_text.substr(0, dash));
        auto last = dhcp::parse_ipv4(dash == std::string::npos ? "" : pool_text.substr(dash + 1));
        if (!first || !last) {
            std::fprintf(stderr, "--pool wants FIRST-LAST, e.g. 10.77.2.10-10.77.2.50\n");
            return 2;
        }
        dhcp::pool p;
        p.first = *first;
        p.last = *last;
        if (!router.empty()) {
            p.router = *dhcp::parse_ipv4(router);
        }
        if (!dns.empty()) {
            p.dns_servers.push_back(*dhcp::parse_ipv4(dns));
        }
        cfg.pools.push_back(p);
    }
    for (const auto& r : reservations) {
        auto eq = r.find('=');
        auto eq2 = r.find('=', eq + 1);
        auto mac = dhcp::parse_mac(r.substr(0, eq));
        auto addr = dhcp::parse_ipv4(eq == std::string::npos ? "" : r.substr(eq + 1, eq2 - eq - 1));
        if (!mac || !addr) {
            std::fprintf(stderr, "--reserve wants MAC=IP[=HOSTNAME]\n");
            return 2;
        }
        cfg.reservations.push_back(
            {*mac, *addr, eq2 == std::string::npos ? "" : r.substr(eq2 + 1)});
    }
    for (const auto& p : dhcp::diagnose(cfg)) {
        std::fprintf(stderr, "check: %s\n", p.c_str());
    }
    // Signals are taken by sigwait on this thread, never by a handler: `timeout` sends its
    // SIGTERM twice (to the child and to the group), and a handler could run after the
    // server is gone.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    auto srv = dhcp::server::create(cfg);
    if (!srv) {
        std::fprintf(stderr, "dhcp_serve: %s\n", srv.err().describe().c_str());
        return 1;
    }
    std::fprintf(stderr, "dhcp_serve: ready\n");
    status st = ok();
    std::thread loop([&] {
        st = (*srv)->run();
        // A failed loop ends the program as a signal would.
        if (!st) {
            kill(getpid(), SIGTERM);
        }
    });
    int sig = 0;
    sigwait(&signals, &sig);
    (*srv)->stop();
    loop.join();
    auto s = (*srv)->stats();
    std::printf(
        "{\"received\": %lu, \"malformed\": %lu, \"ignored\": %lu, \"discovers\": %lu, "
        "\"requests\": %lu, \"offers\": %lu, \"acks\": %lu, \"naks\": %lu, \"releases\": %lu, "
        "\"proxy_offers\": %lu, \"proxy_acks\": %lu, \"pool_exhausted\": %lu, "
        "\"send_errors\": %lu, \"leases_active\": %lu}\n",
        s.received, s.malformed, s.ignored, s.discovers, s.requests, s.offers, s.acks, s.naks,
        s.releases, s.proxy_offers, s.proxy_acks, s.pool_exhausted, s.send_errors, s.leases_active);
    if (!st) {
        std::fprintf(stderr, "dhcp_serve: %s\n", st.err().describe().c_str());
        return 1;
    }
    return 0;
}
