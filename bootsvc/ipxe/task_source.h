// Where boot decisions come from: the task waiting for a host, if any. The control plane
// will implement this over its store; until then a JSON file does (json_file_task_source).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "ipxe/mac.h"

namespace shoal::ipxe {

// A task as the client OS needs it: its type and arguments, each of which reaches the
// kernel command line as shoal.<key>=<value>.
struct boot_task {
    std::string type;  // deploy, capture, multicast, wipe, inventory, debug, ...
    std::vector<std::pair<std::string, std::string>> args;
};

// Checks that a task can go on a kernel command line and into an iPXE script unquoted:
// type and keys [a-z0-9_-] (keys also '.'), values from a conservative set without blanks,
// quotes, '$' or '{' (iPXE would expand ${...}). At most 32 arguments of 256 bytes.
status validate_task(const boot_task& task);

class task_source {
public:
    virtual ~task_source() = default;
    // The task pending for this host, nullopt if none; an error if the source cannot say.
    // Called from the HTTP server's threads, several at once.
    virtual result<std::optional<boot_task>> pending_task(const mac_address& mac) = 0;
};

// Tasks from a JSON file, read again whenever it changes:
//   {"tasks": {"00:12:3f:c4:57:0c": {"type": "deploy", "args": {"image": "win10"}}}}
// MACs in any form parse_mac accepts. A missing file means no tasks; a broken file is an
// error naming the file and the entry (and every request fails until it is fixed, rather
// than booting hosts past the tasks an administrator set).
class json_file_task_source final : public task_source {
public:
    explicit json_file_task_source(std::string path) : _path(std::move(path)) {}

    result<std::optional<boot_task>> pending_task(const mac_address& mac) override;

    // Parses the file's content (for tests and --check).
    static result<std::map<std::string, boot_task>> parse(std::string_view json_text,
                                                          std::string_view origin);

private:
    std::string _path;
    std::mutex _mutex;
    std::map<std::string, boot_task> _tasks;  // by normalized MAC
    bool _loaded = false;
    ino_t _inode = 0;
    std::int64_t _mtime_ns = -1;
    std::int64_t _size = -1;
};

// Fixed answers, for tests.
class memory_task_source final : public task_source {
public:
    void set(const mac_address& mac, boot_task task);
    result<std::optional<boot_task>> pending_task(const mac_address& mac) override;

private:
    std::mutex _mutex;
    std::map<std::string, boot_task> _tasks;
};

}  // namespace shoal::ipxe
