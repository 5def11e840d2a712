#include "services/boot_services.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "rootdir/root_dir.h"

namespace shoal::boot {

namespace {

namespace fs = std::filesystem;

// The boot files Debian's ipxe package ships that shoal hands out.
constexpr const char* ipxe_files[] = {"undionly.kpxe", "ipxe.efi", "snponly.efi"};

bool is_regular(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

}  // namespace

status install_boot_files(const boot_config& c) {
    std::error_code ec;
    fs::create_directories(c.tftp.root_dir, ec);
    if (ec) {
        return error::format(errc::io, ec.value(), "cannot create TFTP root {}", c.tftp.root_dir);
    }
    for (const char* name : ipxe_files) {
        fs::path to = fs::path(c.tftp.root_dir) / name;
        fs::path from = fs::path(debian_ipxe_dir) / name;
        if (fs::exists(to, ec) || !is_regular(from)) {
            continue;
        }
        fs::path tmp = to;
        tmp += ".shoal-tmp";
        fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec) {
            fs::rename(tmp, to, ec);
        }
        if (ec) {
            return error::format(errc::io, ec.value(), "cannot copy {} to {}", from.string(),
                                 to.string());
        }
        log::info("boot: copied {} into the TFTP root", from.string());
    }
    return ok();
}

result<std::unique_ptr<boot_services>> boot_services::start(const boot_config& c) {
    std::unique_ptr<boot_services> b(new boot_services(c));
    if (c.tftp_enabled && c.install_boot_files) {
        SHOAL_RETURN_IF_ERROR(install_boot_files(c));
    }
    if (c.dhcp_enabled) {
        auto s = dhcp::server::create(c.dhcp);
        if (!s) {
            return s.err();
        }
        b->_dhcp = std::move(*s);
    }
    if (c.tftp_enabled) {
        auto s = tftp::server::create(c.tftp);
        if (!s) {
            return s.err();
        }
        b->_tftp = std::move(*s);
    }
    if (c.dhcp_enabled && c.answer_router_solicitations) {
        auto r = ndp::ra_responder::create(c.dhcp.interfaces);
        if (!r) {
            log::warn(
                "boot: not answering IPv6 router solicitations ({}); iPXE will wait ~13 s "
                "for a router on each boot",
                r.err().describe());
        } else {
            b->_ra = std::move(*r);
        }
    }
    // Threads last: on any failure above nothing runs yet and the destructor has no thread
    // to join.
    if (b->_dhcp) {
        b->_threads.emplace_back([s = b->_dhcp.get()] {
            if (auto st = s->run(); !st) {
                log::err("boot: dhcp stopped: {}", st.err().describe());
            }
        });
    }
    if (b->_tftp) {
        b->_threads.emplace_back([s = b->_tftp.get()] {
            if (auto st = s->run(); !st) {
                log::err("boot: tftp stopped: {}", st.err().describe());
            }
        });
    }
    if (b->_ra) {
        b->_threads.emplace_back([r = b->_ra.get()] { r->run(); });
    }
    return b;
}

boot_services::~boot_services() { stop(); }

void boot_services::stop() noexcept {
    if (_dhcp) {
        _dhcp->stop();
    }
    if (_tftp) {
        _tftp->stop();
    }
    if (_ra) {
        _ra->stop();
    }
    for (auto& t : _threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    _threads.clear();
}

void boot_services::add_routes(http::router& routes) const {
    if (!_config.tftp_enabled) {
        return;
    }
    auto tftp_root = bootsvc::root_dir::open(_config.tftp.root_dir);
    if (!tftp_root) {
        log::warn("boot: not serving /tftp/ over HTTP: {}", tftp_root.err().describe());
        return;
    }
    routes.add_prefix(
        http::method::get, "/tftp/",
        http::static_files(std::make_shared<const bootsvc::root_dir>(std::move(*tftp_root)),
                           "/tftp/"));
}

std::optional<dhcp::stats> boot_services::dhcp_stats() const noexcept {
    if (!_dhcp) {
        return std::nullopt;
    }
    return _dhcp->stats();
}

std::optional<tftp::server_stats> boot_services::tftp_stats() const noexcept {
    if (!_tftp) {
        return std::nullopt;
    }
    return _tftp->stats();
}

nlohmann::json boot_services::stats_json() const {
    nlohmann::json j = nlohmann::json::object();
    if (auto s = tftp_stats()) {
        j["tftp"] = {{"requests", s->requests},
                     {"refused", s->refused},
                     {"completed", s->completed},
                     {"failed", s->failed},
                     {"option_probes", s->option_probes},
                     {"active", s->active},
                     {"retransmitted_packets", s->retransmitted_packets},
                     {"bytes_sent", s->bytes_sent},
                     {"file_cache_hits", s->file_cache_hits},
                     {"file_cache_misses", s->file_cache_misses}};
    }
    if (auto s = dhcp_stats()) {
        j["dhcp"] = {{"received", s->received},
                     {"malformed", s->malformed},
                     {"discovers", s->discovers},
                     {"offers", s->offers},
                     {"acks", s->acks},
                     {"proxy_offers", s->proxy_offers},
                     {"proxy_acks", s->proxy_acks},
                     {"leases_active", s->leases_active}};
    }
    return j;
}

std::string boot_services::describe() const {
    const auto& c = _config;
    return fmt::format(
        "{}{}; {}",
        c.dhcp_enabled ? (c.dhcp.mode == dhcp::mode::proxy ? "proxyDHCP" : "DHCP") : "no DHCP",
        c.dhcp_enabled ? fmt::format(" on {}", fmt::join(c.dhcp.interfaces, ",")) : "",
        c.tftp_enabled ? fmt::format("TFTP {}:{} from {}", c.tftp.address,
                                     _tftp ? _tftp->port() : c.tftp.port, c.tftp.root_dir)
                       : "no TFTP");
}

}  // namespace shoal::boot
