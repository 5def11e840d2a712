#include "tftp/file_cache.h"

#include <algorithm>

namespace shoal::tftp {

result<std::shared_ptr<const shared_file>> file_cache::open(std::string_view request_path) {
    // Every request opens the name again: that is where confinement is enforced, and how a
    // replaced file is noticed. The new descriptor is dropped when a cached copy matches.
    auto opened = _root.open_file(request_path);
    if (!opened) {
        return opened.err();
    }
    ++_clock;
    for (auto& e : _entries) {
        if (e.file->identity() == opened->identity) {
            ++_hits;
            e.last_used = _clock;
            return e.file;
        }
    }
    ++_misses;
    auto file = std::make_shared<const shared_file>(std::move(*opened));
    // A stale copy of the same inode (rewritten in place) leaves the cache; transfers that
    // hold it keep it alive until they end.
    std::erase_if(_entries, [&](const entry& e) {
        return e.file->identity().device == file->identity().device &&
               e.file->identity().inode == file->identity().inode;
    });
    _entries.push_back({file, _clock});
    evict_idle();
    return file;
}

void file_cache::evict_idle() {
    std::size_t idle = 0;
    for (const auto& e : _entries) {
        idle += e.file.use_count() == 1 ? 1 : 0;
    }
    while (idle > _idle_files_max) {
        auto oldest = _entries.end();
        for (auto it = _entries.begin(); it != _entries.end(); ++it) {
            if (it->file.use_count() == 1 &&
                (oldest == _entries.end() || it->last_used < oldest->last_used)) {
                oldest = it;
            }
        }
        _entries.erase(oldest);
        --idle;
    }
}

}  // namespace shoal::tftp
