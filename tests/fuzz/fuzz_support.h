// What the fuzz targets and their seed generator share: the session key, the receiver
// harness's record format, and the check that turns a broken promise into a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace shoal::fuzz {

// A failed check is a finding: trap, so libFuzzer saves the input that caused it.
#define FUZZ_CHECK(cond)      \
    do {                      \
        if (!(cond)) {        \
            __builtin_trap(); \
        }                     \
    } while (0)

inline constexpr std::byte key_bytes[] = {
    std::byte{'f'}, std::byte{'u'}, std::byte{'z'}, std::byte{'z'},
    std::byte{'-'}, std::byte{'k'}, std::byte{'e'}, std::byte{'y'},
};
inline constexpr std::span<const std::byte> key{key_bytes};

// fuzz_receiver's input: one config byte, then records, each an op byte (taken modulo
// op_count) and the op's fields, big-endian. A record cut short by the end of the input
// reads zeros for what is missing.
enum class receiver_op : std::uint8_t {
    raw_ours = 0,  // u16 size, bytes: a packet with our session id written into it
    raw = 1,       // u16 size, bytes: a packet as it is
    data = 2,      // u16 block, u8 esi, u8 corrupt, u8 flags, u8 seq_skip: a sender symbol
    announce = 3,  // u8 phase, u8 perturb, u32 value, u32 position, u16 interval_ms, u8 replay
    control = 4,   // u8 command, u8 to_us, u32 rate_floor_kBps
    status = 5,    // u32 receiver_id, u8 run_count, runs of (u16 first, u8 count, u8 missing)
    chunk = 6,     // u8 verdict: take the next chunk and verify it, reject it, accept it, hold it
    time = 7,      // u16 ms: the clock jumps (5 s of silence and the sender is gone)
};
inline constexpr std::uint8_t receiver_op_count = 8;

}  // namespace shoal::fuzz
