#include "store/repository.h"

namespace shoal::store {

int schema_version_latest() noexcept { return 1; }

result<std::unique_ptr<repository>> open_repository(std::string_view url,
                                                    const open_options& options) {
    (void)options;
    return error::format(errc::unsupported, 0, "{:.100}: no store backend yet", url);
}

}  // namespace shoal::store
