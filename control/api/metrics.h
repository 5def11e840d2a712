// /metrics in Prometheus' text exposition format (version 0.0.4): the writer of metric
// families, the HTTP request counters every request passes through, and the boot
// services' DHCP and TFTP counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "dhcp/server.h"
#include "http/server.h"
#include "tftp/server.h"

namespace shoal::api {

using metric_labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// "# HELP name help\n# TYPE name type\n"; type is counter or gauge.
void metric_family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help);
// "name{a="x",b="y"} value\n", label values escaped as the format asks (\\, \", \n).
void metric_sample(std::string& out, std::string_view name, metric_labels labels, double value);

// Requests by method and status code, for every route the server has (API, /boot, files).
class http_counters {
public:
    void record(http::method m, unsigned status) noexcept;
    // shoal_http_requests_total{method,code}.
    void write(std::string& out) const;
    std::uint64_t total() const noexcept;

private:
    static constexpr std::size_t methods = 7;
    // Codes 100..599 by their exact value: a few kilobytes of atomics, no lock, no map.
    static constexpr std::size_t codes = 500;
    std::array<std::array<std::atomic<std::uint64_t>, codes>, methods> _count{};
};

// shoal_dhcp_* and shoal_tftp_* from the boot services (families absent when a service
// does not run).
void write_boot_metrics(std::string& out, const std::optional<dhcp::stats>& dhcp,
                        const std::optional<tftp::server_stats>& tftp);

}  // namespace shoal::api
