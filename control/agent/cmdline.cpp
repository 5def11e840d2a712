#include "agent/cmdline.h"

#include <vector>

namespace shoal::agent {

result<std::map<std::string, std::string>> parse_cmdline(std::string_view text) {
    if (text.size() > cmdline_bytes_max) {
        return error::format(errc::malformed, 0, "kernel command line: {} bytes, more than {}",
                             text.size(), cmdline_bytes_max);
    }
    std::vector<std::string> words;
    std::string word;
    bool quoted = false;
    bool in_word = false;
    for (char c : text) {
        if (c == '"') {
            quoted = !quoted;
            in_word = true;
        } else if (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            if (in_word) {
                words.push_back(std::move(word));
                word.clear();
                in_word = false;
            }
        } else {
            word += c;
            in_word = true;
        }
    }
    if (quoted) {
        return error(errc::malformed, "kernel command line: a double quote is not closed");
    }
    if (in_word) {
        words.push_back(std::move(word));
    }
    std::map<std::string, std::string> out;
    for (const auto& w : words) {
        if (!w.starts_with("shoal.")) {
            continue;
        }
        auto eq = w.find('=');
        std::string key = w.substr(6, eq == std::string::npos ? std::string::npos : eq - 6);
        std::string value = eq == std::string::npos ? std::string() : w.substr(eq + 1);
        bool good_key = !key.empty() && key.size() <= 32;
        for (char c : key) {
            good_key = good_key && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
        }
        if (!good_key) {
            return error::format(errc::malformed, 0,
                                 "kernel command line: '{:.60}' is no shoal.<name>=<value>", w);
        }
        if (value.size() > cmdline_value_bytes_max) {
            return error::format(errc::malformed, 0,
                                 "kernel command line: shoal.{} has {} bytes, more than {}", key,
                                 value.size(), cmdline_value_bytes_max);
        }
        for (char c : value) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                return error::format(errc::malformed, 0,
                                     "kernel command line: shoal.{} holds a control byte", key);
            }
        }
        out[key] = value;
        if (out.size() > cmdline_params_max) {
            return error::format(errc::malformed, 0,
                                 "kernel command line: more than {} shoal.* parameters",
                                 cmdline_params_max);
        }
    }
    return out;
}

}  // namespace shoal::agent
