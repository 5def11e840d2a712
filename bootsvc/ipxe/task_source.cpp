#include "ipxe/task_source.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace shoal::ipxe {

namespace {

constexpr std::size_t task_args_max = 32;
constexpr std::size_t task_value_size_max = 256;
constexpr std::size_t task_name_size_max = 64;

bool name_char(char c, bool dots) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           (dots && c == '.');
}

bool value_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("._-:/,=+@%").find(c) != std::string_view::npos;
}

}  // namespace

status validate_task(const boot_task& task) {
    if (task.type.empty() || task.type.size() > task_name_size_max) {
        return error(errc::invalid_argument, "task type must have 1 to 64 characters");
    }
    for (char c : task.type) {
        if (!name_char(c, false)) {
            return error::format(errc::invalid_argument, 0,
                                 "task type '{}' may hold only a-z, 0-9, '_' and '-'", task.type);
        }
    }
    if (task.args.size() > task_args_max) {
        return error::format(errc::invalid_argument, 0, "task has {} arguments, at most {}",
                             task.args.size(), task_args_max);
    }
    for (const auto& [key, value] : task.args) {
        if (key.empty() || key.size() > task_name_size_max) {
            return error(errc::invalid_argument, "argument names have 1 to 64 characters");
        }
        for (char c : key) {
            if (!name_char(c, true)) {
                return error::format(errc::invalid_argument, 0,
                                     "argument name '{}' may hold only a-z, 0-9, '.', '_', '-'",
                                     key);
            }
        }
        if (value.size() > task_value_size_max) {
            return error::format(errc::invalid_argument, 0, "argument {} is over {} bytes", key,
                                 task_value_size_max);
        }
        for (char c : value) {
            if (!value_char(c)) {
                return error::format(errc::invalid_argument, 0,
                                     "argument {} holds '{}': values may hold letters, digits "
                                     "and ._-:/,=+@% only",
                                     key, c);
            }
        }
    }
    return ok();
}

result<std::map<std::string, boot_task>> json_file_task_source::parse(std::string_view json_text,
                                                                      std::string_view origin) {
    auto doc = nlohmann::json::parse(json_text, nullptr, false);
    if (doc.is_discarded()) {
        return error::format(errc::malformed, 0, "{}: not valid JSON", origin);
    }
    std::map<std::string, boot_task> out;
    if (!doc.is_object() || !doc.contains("tasks")) {
        return error::format(errc::malformed, 0, "{}: expected {{\"tasks\": {{MAC: task}}}}",
                             origin);
    }
    const auto& tasks = doc["tasks"];
    if (!tasks.is_object()) {
        return error::format(errc::malformed, 0, "{}: \"tasks\" must be an object", origin);
    }
    for (const auto& [key, value] : tasks.items()) {
        auto mac = parse_mac(key);
        if (!mac) {
            return error::format(errc::malformed, 0, "{}: task key '{}': {}", origin, key,
                                 mac.err().context());
        }
        if (!value.is_object() || !value.contains("type") || !value["type"].is_string()) {
            return error::format(errc::malformed, 0, "{}: task for {} needs a \"type\" string",
                                 origin, key);
        }
        boot_task task;
        task.type = value["type"].get<std::string>();
        if (value.contains("args")) {
            const auto& args = value["args"];
            if (!args.is_object()) {
                return error::format(errc::malformed, 0, "{}: \"args\" of {} must be an object",
                                     origin, key);
            }
            for (const auto& [name, v] : args.items()) {
                if (v.is_string()) {
                    task.args.emplace_back(name, v.get<std::string>());
                } else if (v.is_number_integer() || v.is_boolean()) {
                    task.args.emplace_back(name, v.dump());
                } else {
                    return error::format(errc::malformed, 0,
                                         "{}: argument {} of {} must be a string or number", origin,
                                         name, key);
                }
            }
        }
        if (auto s = validate_task(task); !s) {
            return error::format(errc::malformed, 0, "{}: task for {}: {}", origin, key,
                                 s.err().context());
        }
        out[mac->to_string()] = std::move(task);
    }
    return out;
}

result<std::optional<boot_task>> json_file_task_source::pending_task(const mac_address& mac) {
    std::lock_guard lock(_mutex);
    struct stat st {};
    if (::stat(_path.c_str(), &st) != 0) {
        if (errno != ENOENT) {
            return error::format(errc::io, errno, "tasks file {}", _path);
        }
        if (_loaded || _mtime_ns != 0) {
            log::info("ipxe: tasks file {} is absent: no host has a task", _path);
        }
        _tasks.clear();
        _loaded = false;
        _mtime_ns = 0;
        return std::optional<boot_task>();
    }
    std::int64_t mtime_ns =
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    if (!_loaded || st.st_ino != _inode || mtime_ns != _mtime_ns || st.st_size != _size) {
        std::ifstream in(_path);
        std::stringstream content;
        content << in.rdbuf();
        if (!in) {
            return error::format(errc::io, errno, "cannot read tasks file {}", _path);
        }
        auto parsed = parse(content.str(), _path);
        if (!parsed) {
            log::err("ipxe: {}", parsed.err().describe());
            return parsed.err();
        }
        _tasks = std::move(*parsed);
        _loaded = true;
        _inode = st.st_ino;
        _mtime_ns = mtime_ns;
        _size = st.st_size;
        log::info("ipxe: read {} task(s) from {}", _tasks.size(), _path);
    }
    auto it = _tasks.find(mac.to_string());
    if (it == _tasks.end()) {
        return std::optional<boot_task>();
    }
    return std::optional<boot_task>(it->second);
}

void memory_task_source::set(const mac_address& mac, boot_task task) {
    std::lock_guard lock(_mutex);
    _tasks[mac.to_string()] = std::move(task);
}

result<std::optional<boot_task>> memory_task_source::pending_task(const mac_address& mac) {
    std::lock_guard lock(_mutex);
    auto it = _tasks.find(mac.to_string());
    if (it == _tasks.end()) {
        return std::optional<boot_task>();
    }
    return std::optional<boot_task>(it->second);
}

}  // namespace shoal::ipxe
