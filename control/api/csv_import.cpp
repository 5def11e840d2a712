#include "api/csv_import.h"

#include <csv.h>

#include <map>
#include <memory>

#include <fmt/format.h>

#include "ipxe/mac.h"

namespace shoal::api {

namespace {

// FOG's column order.
enum column : std::size_t {
    col_mac = 0,
    col_name = 1,
    col_ip = 2,
    col_description = 3,
    col_os = 4,
    col_image = 5
};

constexpr std::size_t fields_max = 64;  // a line with more is refused, not accumulated

struct parse_state {
    const csv_limits* limits = nullptr;
    csv_import* out = nullptr;
    std::vector<std::string> fields;
    bool too_many_fields = false;
    std::size_t line = 1;         // the physical line being fed
    std::size_t record_line = 0;  // where the record being read started
    bool first_record = true;
    bool stopped = false;                      // errors_max or hosts_max reached
    bool record_ended = false;                 // set by the record callback
    std::map<std::string, std::size_t> macs;   // -> line
    std::map<std::string, std::size_t> names;  // -> line
};

void add_error(parse_state& s, std::size_t line, std::string field, std::string message) {
    if (s.stopped) {
        return;  // the report already says that more errors follow
    }
    auto& errors = s.out->errors;
    if (errors.size() + 1 == s.limits->errors_max) {
        errors.push_back({line, "",
                          fmt::format("more errors follow; only the first {} are shown",
                                      s.limits->errors_max - 1)});
        s.stopped = true;
        return;
    }
    errors.push_back({line, std::move(field), std::move(message)});
}

void end_record(parse_state& s) {
    if (s.stopped) {
        return;
    }
    std::size_t line = s.record_line;
    auto fields = std::move(s.fields);
    s.fields.clear();
    bool header = s.first_record && !fields.empty() && fields[col_mac].size() == 3 &&
                  (fields[col_mac][0] | 0x20) == 'm' && (fields[col_mac][1] | 0x20) == 'a' &&
                  (fields[col_mac][2] | 0x20) == 'c';
    s.first_record = false;
    if (header) {
        return;
    }
    if (s.too_many_fields) {
        s.too_many_fields = false;
        add_error(s, line, "", fmt::format("more than {} columns", fields_max));
        return;
    }
    if (fields.size() < 2) {
        add_error(s, line, "",
                  "a host line has at least two columns: \"MAC\",\"Hostname\" (FOG's order: "
                  "MAC, Hostname, IP, Description, OS, Image)");
        return;
    }
    if (s.out->hosts.size() == s.limits->hosts_max) {
        add_error(s, 0, "",
                  fmt::format("more than {} hosts in one file: split it", s.limits->hosts_max));
        s.stopped = true;
        return;
    }
    csv_host h;
    h.line = line;
    bool good = true;
    auto mac = ipxe::parse_mac(fields[col_mac]);
    if (!mac) {
        add_error(s, line, "mac",
                  fmt::format("\"{}\" is not a MAC address: {} (FOG writes 00:12:3F:C4:57:0C)",
                              fields[col_mac].substr(0, 40), mac.err().context()));
        good = false;
    } else {
        h.mac = mac->to_string();
        auto [it, fresh] = s.macs.emplace(h.mac, line);
        if (!fresh) {
            add_error(s, line, "mac", fmt::format("MAC {} is also on line {}", h.mac, it->second));
            good = false;
        }
    }
    h.name = fields[col_name];
    if (!valid_host_name(h.name)) {
        add_error(s, line, "name",
                  fmt::format("\"{}\" is not a host name: 1 to 63 of A-Z a-z 0-9 . _ -",
                              h.name.substr(0, 80)));
        good = false;
    } else {
        auto [it, fresh] = s.names.emplace(h.name, line);
        if (!fresh) {
            add_error(s, line, "name",
                      fmt::format("host name {} is also on line {}", h.name, it->second));
            good = false;
        }
    }
    if (fields.size() > col_description) {
        h.description = fields[col_description];
        if (h.description.size() > s.limits->description_size_max) {
            add_error(
                s, line, "description",
                fmt::format("the description is over {} bytes", s.limits->description_size_max));
            good = false;
        }
    }
    if (fields.size() > col_image) {
        h.image = fields[col_image];
    }
    if (good) {
        s.out->hosts.push_back(std::move(h));
    }
}

void on_field(void* data, std::size_t size, void* p) {
    auto& s = *static_cast<parse_state*>(p);
    if (s.fields.size() == fields_max) {
        s.too_many_fields = true;
        return;
    }
    s.fields.emplace_back(data != nullptr ? static_cast<const char*>(data) : "", size);
}

void on_record(int, void* p) {
    auto& s = *static_cast<parse_state*>(p);
    s.record_ended = true;
    end_record(s);
}

struct parser_deleter {
    void operator()(csv_parser* p) const noexcept {
        csv_free(p);
        delete p;
    }
};

std::unique_ptr<csv_parser, parser_deleter> make_parser() {
    std::unique_ptr<csv_parser, parser_deleter> p(new csv_parser);
    // Strict: a quote inside an unquoted field, or a quoted field that never ends, is an
    // error rather than a guess.
    if (csv_init(p.get(), CSV_STRICT | CSV_STRICT_FINI) != 0) {
        return nullptr;
    }
    return p;
}

}  // namespace

bool valid_host_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 63) {
        return false;
    }
    for (char c : name) {
        bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
        if (!good) {
            return false;
        }
    }
    return true;
}

csv_import parse_fog_hosts_csv(std::string_view text, const csv_limits& limits) {
    csv_import out;
    parse_state s;
    s.limits = &limits;
    s.out = &out;
    if (text.starts_with("\xEF\xBB\xBF")) {  // the byte-order mark spreadsheets write
        text.remove_prefix(3);
    }
    auto parser = make_parser();
    if (!parser) {
        out.errors.push_back({0, "", "cannot start the CSV parser (out of memory)"});
        return out;
    }
    bool in_record = false;
    std::size_t at = 0;
    // One physical line at a time, so that every record and every error has its number.
    while (at < text.size() && !s.stopped) {
        std::size_t end = text.find('\n', at);
        std::size_t next = end == std::string_view::npos ? text.size() : end + 1;
        std::string_view chunk = text.substr(at, next - at);
        bool blank = chunk.find_first_not_of(" \t\r\n") == std::string_view::npos;
        if (!in_record && !blank) {
            s.record_line = s.line;
            in_record = true;
        }
        s.record_ended = false;
        std::size_t fed =
            csv_parse(parser.get(), chunk.data(), chunk.size(), on_field, on_record, &s);
        if (fed != chunk.size()) {
            add_error(s, s.record_line, "",
                      fmt::format("malformed CSV ({}): quote a field that holds a quote or a "
                                  "comma, and double the quotes inside it",
                                  csv_strerror(csv_error(parser.get()))));
            // Start again on the next line with a fresh parser and an empty record.
            parser = make_parser();
            if (!parser) {
                break;
            }
            s.fields.clear();
            s.too_many_fields = false;
            in_record = false;
        } else if (s.record_ended) {
            // Records end at a line's end (a newline inside quotes does not end one).
            in_record = false;
        }
        at = next;
        ++s.line;
    }
    if (parser && !s.stopped) {
        if (csv_fini(parser.get(), on_field, on_record, &s) != 0) {
            add_error(s, s.record_line, "",
                      "malformed CSV: a quoted field is not closed before the end of the file");
        }
    }
    if (out.hosts.empty() && out.errors.empty()) {
        out.errors.push_back({0, "", "no host lines in the file"});
    }
    return out;
}

}  // namespace shoal::api
