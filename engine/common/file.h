// Reading a small file whole: sidecars, manifests, keys.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/result.h"

namespace shoal {

// Reads the regular file at `path` whole. Errors name the path: not_found, invalid_argument
// (not a regular file), malformed (larger than size_bytes_max), truncated (it shrank while
// read), io.
result<std::vector<std::byte>> read_file(const std::string& path, std::size_t size_bytes_max);

}  // namespace shoal
