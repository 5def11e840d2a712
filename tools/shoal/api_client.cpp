#include "api_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace shoal::cli {

namespace {

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

// A path segment as it may appear in a URL.
std::string escape(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += fmt::format("%{:02X}", c);
        }
    }
    return out;
}

bool all_digits(const std::string& s) {
    return !s.empty() && s.size() < 19 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

void add_api_options(CLI::App* sub, api_options& o) {
    const char* server = std::getenv("SHOAL_SERVER");
    const char* token = std::getenv("SHOAL_TOKEN");
    o.server = server != nullptr ? server : "http://localhost";
    o.token = token != nullptr ? token : "";
    sub->add_option("--server", o.server,
                    "shoald's URL (default $SHOAL_SERVER or http://localhost)");
    sub->add_option("--token", o.token,
                    "API token (default $SHOAL_TOKEN; `shoal login` style: POST /api/v1/login)");
    sub->add_flag("--json", o.json, "print the API's JSON");
}

result<api_reply> api_call(const api_options& o, std::string_view verb, const std::string& path,
                           const std::string& body, const char* content_type) {
    static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!curl_ready) {
        return error(errc::io, "libcurl did not start");
    }
    std::string server = o.server;
    while (!server.empty() && server.back() == '/') {
        server.pop_back();
    }
    std::string url = server + "/api/v1" + path;
    CURL* c = curl_easy_init();
    if (c == nullptr) {
        return error(errc::io, "libcurl did not start");
    }
    curl_slist* headers = nullptr;
    std::string auth = "Authorization: Bearer " + o.token;
    if (!o.token.empty()) {
        headers = curl_slist_append(headers, auth.c_str());
    }
    std::string type = std::string("Content-Type: ") + content_type;
    headers = curl_slist_append(headers, type.c_str());
    std::string method(verb);
    api_reply out;
    char why[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (!body.empty() || verb == "POST" || verb == "PATCH") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.text);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        return error::format(errc::peer_gone, 0,
                             "{}: {} (is shoald running? --server or "
                             "$SHOAL_SERVER says where)",
                             url, why[0] != '\0' ? why : curl_easy_strerror(rc));
    }
    out.body = nlohmann::json::parse(out.text, nullptr, false);
    if (out.body.is_discarded()) {
        out.body = nullptr;
    }
    return out;
}

int api_failed(std::string_view what, const api_reply& r) {
    std::string message = r.body.is_object() && r.body.contains("error")
                              ? cell(r.body["error"])
                              : fmt::format("HTTP {}: {:.200}", r.status, r.text);
    std::string field = r.body.is_object() ? cell(r.body.value("field", nlohmann::json())) : "";
    std::fprintf(stderr, "shoal: %.*s: %s%s\n", static_cast<int>(what.size()), what.data(),
                 message.c_str(), field.empty() ? "" : fmt::format(" (field: {})", field).c_str());
    if (r.body.is_object() && r.body.contains("lines")) {
        for (const auto& l : r.body["lines"]) {
            std::fprintf(stderr, "  line %s: %s%s\n",
                         cell(l.value("line", nlohmann::json())).c_str(),
                         cell(l.value("error", nlohmann::json())).c_str(),
                         l.contains("field") ? fmt::format(" ({})", cell(l["field"])).c_str() : "");
        }
    }
    if (r.status == 401) {
        std::fprintf(stderr, "  (give a token with --token or $SHOAL_TOKEN)\n");
    }
    return 1;
}

bool api_ok(const api_options& o, std::string_view verb, const std::string& path, api_reply& out,
            std::string_view what, const std::string& body, const char* content_type) {
    auto r = api_call(o, verb, path, body, content_type);
    if (!r) {
        std::fprintf(stderr, "shoal: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                     r.err().describe().c_str());
        return false;
    }
    out = std::move(*r);
    if (out.status < 200 || out.status >= 300) {
        api_failed(what, out);
        return false;
    }
    return true;
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width(header.size());
    for (std::size_t i = 0; i < header.size(); ++i) {
        width[i] = header[i].size();
        for (const auto& r : rows) {
            width[i] = std::max(width[i], i < r.size() ? r[i].size() : 0);
        }
    }
    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (std::size_t i = 0; i < header.size(); ++i) {
            const std::string& v = i < cells.size() ? cells[i] : std::string();
            out += i + 1 < header.size() ? fmt::format("{:<{}}  ", v, width[i]) : v;
        }
        std::puts(out.c_str());
    };
    line(header);
    for (const auto& r : rows) {
        line(r);
    }
}

std::string cell(const nlohmann::json& v) {
    if (v.is_null()) {
        return "";
    }
    if (v.is_string()) {
        return v.get<std::string>();
    }
    return v.dump();
}

result<std::string> host_path(const api_options& o, const std::string& ref) {
    if (all_digits(ref)) {
        return "/hosts/" + ref;
    }
    bool mac_like = (ref.size() == 17 && (ref[2] == ':' || ref[2] == '-')) ||
                    (ref.size() == 12 && std::all_of(ref.begin(), ref.end(), [](char c) {
                         return std::isxdigit(static_cast<unsigned char>(c)) != 0;
                     }));
    if (mac_like) {
        return "/hosts/by-mac/" + escape(ref);
    }
    // A name: the API finds hosts by id and MAC; page through for the name.
    for (long offset = 0; offset < 1000000; offset += 1000) {
        auto r = api_call(o, "GET", fmt::format("/hosts?limit=1000&offset={}", offset));
        if (!r) {
            return r.err();
        }
        if (r->status != 200 || !r->body.is_object()) {
            return error::format(errc::io, 0, "listing hosts: HTTP {}: {:.200}", r->status,
                                 r->text);
        }
        for (const auto& h : r->body["items"]) {
            if (h.value("name", "") == ref) {
                return fmt::format("/hosts/{}", h["id"].get<long long>());
            }
        }
        if (r->body["items"].size() < 1000) {
            break;
        }
    }
    return error::format(errc::not_found, 0, "no host named {} (give its id, MAC or name)", ref);
}

result<long long> image_id(const api_options& o, const std::string& ref) {
    if (all_digits(ref)) {
        return std::stoll(ref);
    }
    auto r = api_call(o, "GET", "/images?limit=1000");
    if (!r) {
        return r.err();
    }
    if (r->status != 200 || !r->body.is_object()) {
        return error::format(errc::io, 0, "listing images: HTTP {}: {:.200}", r->status, r->text);
    }
    for (const auto& i : r->body["items"]) {
        if (i.value("name", "") == ref) {
            return i["id"].get<long long>();
        }
    }
    return error::format(errc::not_found, 0, "no image named {} (shoal image list --server ...)",
                         ref);
}

int run_api_image_list(const api_options& o) {
    api_reply r;
    if (!api_ok(o, "GET", "/images?limit=1000", r, "image list")) {
        return 1;
    }
    if (o.json) {
        std::puts(r.body.dump(2).c_str());
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& i : r.body["items"]) {
        rows.push_back({cell(i["id"]), cell(i["name"]), cell(i["kind"]), cell(i["size_bytes"]),
                        i.value("protected", false) ? "yes" : "", cell(i["description"])});
    }
    print_table({"ID", "NAME", "KIND", "SIZE_BYTES", "PROTECTED", "DESCRIPTION"}, rows);
    return 0;
}

}  // namespace shoal::cli
