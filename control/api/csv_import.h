// FOG's host CSV, as its "Export Hosts" page writes it and its "Import Hosts" page reads it:
// one host per line, "MAC","Hostname","","Description","OS","Image" (the third column, an IP
// address in old versions, and the OS are ignored; columns after the sixth too). Parsed with
// libcsv (RFC 4180 quoting, CRLF or LF). Every line is checked before any host is made, so
// that an import is all or nothing: the errors name every bad line by its number.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::api {

struct csv_host {
    std::size_t line = 0;  // 1-based, where the record starts
    std::string mac;       // normalized: 00:12:3f:c4:57:0c
    std::string name;
    std::string description;
    std::string image;  // an image's name (or its numeric id); empty: none assigned
};

struct csv_line_error {
    std::size_t line = 0;  // 1-based; 0 for the file as a whole
    std::string field;     // "mac", "name", "description", "image" or "" (the line itself)
    std::string message;
};

struct csv_import {
    std::vector<csv_host> hosts;
    std::vector<csv_line_error> errors;  // empty: every host is good to import
};

struct csv_limits {
    std::size_t hosts_max = 10000;  // more is an error on the file, not a truncation
    std::size_t errors_max = 100;   // the report stops after this many, saying so
    std::size_t description_size_max = 1024;
};

// Parses and checks every line: the MAC (any form ipxe::parse_mac takes), the host name
// (FOG's rule, [A-Za-z0-9._-]{1,63}), duplicate MACs and names within the file. A first
// line whose first field is "MAC" (any case) is a header and skipped; blank lines too.
// Whether the MACs, names and images clash with the store is the importer's to check.
csv_import parse_fog_hosts_csv(std::string_view text, const csv_limits& limits = {});

// FOG's rule for a host name: 1 to 63 of [A-Za-z0-9._-].
bool valid_host_name(std::string_view name) noexcept;

}  // namespace shoal::api
