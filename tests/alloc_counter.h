// Counts calls to the global operator new in this test program, so a test can prove that a
// hot path does not allocate. Link alloc_counter.cpp into the test program to use it.
#pragma once

#include <cstddef>

namespace shoal::test {

// Allocations made by any thread since the program started.
std::size_t allocation_count() noexcept;

}  // namespace shoal::test
