// The shoal.* parameters of a kernel command line (/proc/cmdline), as the iPXE script
// writes them: shoal.server=http://10.77.0.1 shoal.mac=52:54:00:12:34:56 shoal.task=7 ...
// (docs/agent.md lists them). Words are blank-separated; a double-quoted stretch keeps
// its blanks, as the kernel reads it; words not starting with "shoal." are ignored.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace shoal::agent {

constexpr std::size_t cmdline_bytes_max = 8192;
constexpr std::size_t cmdline_params_max = 64;
constexpr std::size_t cmdline_value_bytes_max = 512;

// key (without "shoal.") -> value; a later word wins over an earlier one, as in the
// kernel. Errors (errc::malformed, naming the word): more than the limits above, a key
// outside [a-z0-9_], a control byte in a value, an unterminated quote.
result<std::map<std::string, std::string>> parse_cmdline(std::string_view text);

}  // namespace shoal::agent
