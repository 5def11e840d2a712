#include "image/source.h"

#include <algorithm>
#include <cstring>

namespace shoal::image {

status extent_builder::add(std::uint64_t offset_bytes, std::uint64_t size_bytes) {
    if (size_bytes == 0) {
        return ok();
    }
    if (!_extents.empty()) {
        extent& last = _extents.back();
        const std::uint64_t end = last.offset_bytes + last.size_bytes;
        if (offset_bytes < end) {
            return error::format(errc::invalid_argument, 0,
                                 "extent at {} starts before the end of the previous one ({})",
                                 offset_bytes, end);
        }
        if (offset_bytes == end) {
            last.size_bytes += size_bytes;
            _total += size_bytes;
            return ok();
        }
    }
    _extents.push_back({offset_bytes, size_bytes});
    _total += size_bytes;
    return ok();
}

memory_source::memory_source(std::span<const std::byte> bytes, source_info info)
    : _bytes(bytes), _info(std::move(info)) {
    if (_info.size_bytes == 0) {
        _info.size_bytes = bytes.size();
    }
    if (_info.fs_size_bytes == 0) {
        _info.fs_size_bytes = _info.size_bytes;
    }
    if (!bytes.empty()) {
        _extents.push_back({0, bytes.size()});
    }
}

result<std::size_t> memory_source::read(std::span<std::byte> out) {
    const std::size_t n = std::min(out.size(), _bytes.size() - _done);
    if (n > 0) {
        std::memcpy(out.data(), _bytes.data() + _done, n);
    }
    _done += n;
    return n;
}

}  // namespace shoal::image
