#include "api/metrics.h"

#include <fmt/format.h>

namespace shoal::api {

namespace {

void escape_into(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

}  // namespace

void metric_family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void metric_sample(std::string& out, std::string_view name, metric_labels labels, double value) {
    out += name;
    if (labels.size() > 0) {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first) {
                out += ',';
            }
            first = false;
            out += k;
            out += "=\"";
            escape_into(out, v);
            out += '"';
        }
        out += '}';
    }
    fmt::format_to(std::back_inserter(out), " {}\n", value);
}

void http_counters::record(http::method m, unsigned status) noexcept {
    auto mi = static_cast<std::size_t>(m);
    if (mi >= methods || status < 100 || status >= 100 + codes) {
        return;
    }
    _count[mi][status - 100].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t http_counters::total() const noexcept {
    std::uint64_t n = 0;
    for (const auto& per_method : _count) {
        for (const auto& c : per_method) {
            n += c.load(std::memory_order_relaxed);
        }
    }
    return n;
}

void http_counters::write(std::string& out) const {
    metric_family(out, "shoal_http_requests_total", "counter",
                  "HTTP requests answered, by method and status code");
    for (std::size_t m = 0; m < methods; ++m) {
        for (std::size_t c = 0; c < codes; ++c) {
            std::uint64_t n = _count[m][c].load(std::memory_order_relaxed);
            if (n == 0) {
                continue;
            }
            std::string code = std::to_string(c + 100);
            metric_sample(
                out, "shoal_http_requests_total",
                {{"method", http::method_name(static_cast<http::method>(m))}, {"code", code}},
                static_cast<double>(n));
        }
    }
}

void write_boot_metrics(std::string& out, const std::optional<dhcp::stats>& dhcp,
                        const std::optional<tftp::server_stats>& tftp) {
    auto counter = [&](std::string_view name, std::string_view help, std::uint64_t v,
                       std::string_view type = "counter") {
        metric_family(out, name, type, help);
        metric_sample(out, name, {}, static_cast<double>(v));
    };
    if (dhcp) {
        metric_family(out, "shoal_dhcp_messages_total", "counter",
                      "DHCP messages received and sent, by kind");
        const std::pair<std::string_view, std::uint64_t> kinds[] = {
            {"received", dhcp->received},
            {"malformed", dhcp->malformed},
            {"ignored", dhcp->ignored},
            {"discover", dhcp->discovers},
            {"request", dhcp->requests},
            {"release", dhcp->releases},
            {"decline", dhcp->declines},
            {"inform", dhcp->informs},
            {"offer", dhcp->offers},
            {"ack", dhcp->acks},
            {"nak", dhcp->naks},
            {"proxy_offer", dhcp->proxy_offers},
            {"proxy_ack", dhcp->proxy_acks},
        };
        for (const auto& [kind, n] : kinds) {
            metric_sample(out, "shoal_dhcp_messages_total", {{"kind", kind}},
                          static_cast<double>(n));
        }
        counter("shoal_dhcp_pool_exhausted_total", "DISCOVERs that found no address to offer",
                dhcp->pool_exhausted);
        counter("shoal_dhcp_send_errors_total", "DHCP answers the kernel refused to send",
                dhcp->send_errors);
        counter("shoal_dhcp_leases_active", "bound DHCP leases now", dhcp->leases_active, "gauge");
    }
    if (tftp) {
        metric_family(out, "shoal_tftp_transfers_total", "counter",
                      "TFTP read requests, by how they ended");
        const std::pair<std::string_view, std::uint64_t> ends[] = {
            {"requested", tftp->requests},         {"refused", tftp->refused},
            {"completed", tftp->completed},        {"failed", tftp->failed},
            {"option_probe", tftp->option_probes},
        };
        for (const auto& [end, n] : ends) {
            metric_sample(out, "shoal_tftp_transfers_total", {{"result", end}},
                          static_cast<double>(n));
        }
        counter("shoal_tftp_transfers_active", "TFTP transfers running now", tftp->active, "gauge");
        counter("shoal_tftp_sent_bytes_total", "file bytes sent by TFTP (retransmissions too)",
                tftp->bytes_sent);
        counter("shoal_tftp_retransmitted_packets_total", "TFTP DATA packets sent again",
                tftp->retransmitted_packets);
        counter("shoal_tftp_file_cache_hits_total", "TFTP file opens served from the cache",
                tftp->file_cache_hits);
        counter("shoal_tftp_file_cache_misses_total", "TFTP file opens that read the disk",
                tftp->file_cache_misses);
    }
}

}  // namespace shoal::api
