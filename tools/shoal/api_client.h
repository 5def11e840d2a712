// The shoal CLI's way to a shoald: JSON over HTTP with libcurl, the server and token from
// --server/--token or $SHOAL_SERVER/$SHOAL_TOKEN, and the API's errors shown as it gives
// them (the message, the field at fault, every bad CSV line).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/result.h"

namespace shoal::cli {

struct api_options {
    std::string server;  // http://host[:port]
    std::string token;
    bool json = false;  // print the API's JSON as is
};

// --server, --token and --json on a subcommand.
void add_api_options(CLI::App* sub, api_options& o);

struct api_reply {
    long status = 0;
    nlohmann::json body;  // null when the answer is not JSON
    std::string text;
};

// One request; an error only when no answer came (the server is down, a bad URL).
result<api_reply> api_call(const api_options& o, std::string_view verb, const std::string& path,
                           const std::string& body = {},
                           const char* content_type = "application/json");

// Prints "shoal: <what>: <the API's error> (field: x)" and each bad line to stderr;
// returns the exit code (1).
int api_failed(std::string_view what, const api_reply& r);

// The whole call for the commands: a 2xx reply, or the error already printed.
bool api_ok(const api_options& o, std::string_view verb, const std::string& path, api_reply& out,
            std::string_view what, const std::string& body = {},
            const char* content_type = "application/json");

// Prints rows under a header, columns padded to their widest cell.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

// "" for null, the string itself, or the JSON text of anything else.
std::string cell(const nlohmann::json& v);

// The API path of a host given by id, MAC or name ("/hosts/3", "/hosts/by-mac/..."); a
// name is looked up.
result<std::string> host_path(const api_options& o, const std::string& ref);
// An image's id from its name or id.
result<long long> image_id(const api_options& o, const std::string& ref);

// `shoal image list --server`: the images shoald knows.
int run_api_image_list(const api_options& o);

}  // namespace shoal::cli
