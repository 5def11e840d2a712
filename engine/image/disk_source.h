// A partition_source over a disk: the used extents of one partition, read in order with
// io_uring, several reads in flight ahead of the consumer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "image/source.h"
#include "image/usedmap.h"

namespace shoal::image {

class disk_source final : public partition_source {
public:
    // Reads from fd (which must stay open) at base_offset_bytes + each extent's offset.
    static result<std::unique_ptr<disk_source>> create(int fd, std::string name,
                                                       std::uint64_t base_offset_bytes,
                                                       used_map map);
    ~disk_source() override;
    source_info describe() const override;
    std::span<const extent> extents() const override;
    result<std::size_t> read(std::span<std::byte> out) override;

private:
    struct state;
    explicit disk_source(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

}  // namespace shoal::image
