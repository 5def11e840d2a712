// shoal's multicast session packets: the wire format, encoded and decoded in one place.
//
// Every packet starts with the same 12-byte header, in network byte order:
//   0  u16 magic  'S','H' (0x5348)
//   2  u8  version (1)
//   3  u8  type    (packet_type)
//   4  u32 session_id   chosen at random by the sender; other sessions' packets are dropped
//   8  u32 seq          the sender's (or receiver's) own packet counter
// followed by the type's body. Structs here are the decoded form; decode never trusts a
// length it has not checked against the bytes it was given.
//
// Packets that steer receivers (announce, control) end with a 16-byte HMAC-SHA256 tag
// under the session key: an attacker on the lab network cannot start, end or redirect a
// session. Data and repair packets carry no tag: a forged symbol fails its chunk's SHA-256
// and costs a repair, never a bad disk.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/result.h"

namespace shoal::wire {

inline constexpr std::uint16_t magic = 0x5348;
inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 12;
inline constexpr std::size_t data_header_size = header_size + 8;
inline constexpr std::size_t tag_size = 16;
inline constexpr std::size_t sha256_size = 32;

enum class packet_type : std::uint8_t {
    data = 1,      // a source or repair symbol of one block
    announce = 2,  // sender: the session's shape, its manifest's hash, its progress
    status = 3,    // receiver: progress and losses, as counts per block
    control = 4,   // sender: an order to one receiver (slow down, leave to catch up...)
};

struct header {
    packet_type type{};
    std::uint32_t session_id = 0;
    std::uint32_t seq = 0;
};

// ---- data -------------------------------------------------------------------------------
// Body: u32 block, u8 esi, u8 k, u8 flags, u8 reserved, then the symbol.
struct data_packet {
    header hdr;
    std::uint32_t block = 0;   // global block index
    std::uint8_t esi = 0;      // < k: source symbol; >= k: repair symbol
    std::uint8_t k = 0;        // source symbols in this block
    std::uint8_t flags = 0;    // data_flag_*
    std::span<const std::byte> symbol;
};
inline constexpr std::uint8_t data_flag_catch_up = 0x01;  // sent in a catch-up pass

// ---- announce ---------------------------------------------------------------------------
enum class session_phase : std::uint8_t {
    waiting = 0,   // gathering receivers before the start
    main = 1,      // first pass over every block
    catch_up = 2,  // the main pass is over; serving what receivers still lack
    done = 3,      // sender finished; receivers still incomplete must give up or go unicast
};

struct announce_packet {
    header hdr;
    session_phase phase = session_phase::waiting;
    std::uint8_t k_max = 0;
    std::uint16_t symbol_size = 0;
    std::uint32_t manifest_size = 0;       // bytes of the session manifest (blocks from 0)
    std::uint32_t block_count = 0;         // every block, manifest's included
    std::uint32_t position = 0;            // next block of the main pass
    std::uint32_t receiver_count = 0;      // receivers the sender knows of
    std::uint32_t feedback_interval_us = 0;// how often each receiver may send status
    std::uint64_t rate_bps = 0;            // the sender's current pace (IP-layer bits/s)
    std::array<std::uint8_t, sha256_size> manifest_sha256{};
};
inline constexpr std::size_t announce_body_size = 1 + 1 + 2 + 4 * 5 + 8 + sha256_size;
inline constexpr std::size_t announce_size = header_size + announce_body_size + tag_size;

// ---- status -----------------------------------------------------------------------------
// A run of consecutive blocks that each lack `missing` symbols.
struct loss_run {
    std::uint32_t first_block = 0;
    std::uint16_t block_count = 0;
    std::uint8_t missing = 0;
};
inline constexpr std::size_t loss_run_size = 8;

inline constexpr std::uint8_t status_flag_complete = 0x01;  // every chunk verified and written
inline constexpr std::uint8_t status_flag_failed = 0x02;    // gave up (disk error...)
inline constexpr std::uint8_t status_flag_lagging = 0x04;   // dropping data: memory full
inline constexpr std::uint8_t status_flag_leaving = 0x08;   // leaving the session

struct status_packet {
    header hdr;
    std::uint32_t receiver_id = 0;
    std::uint8_t flags = 0;
    std::uint8_t reserved = 0;
    std::uint16_t run_count = 0;
    std::uint32_t watermark = 0;          // every block below is complete
    std::uint32_t blocks_complete = 0;
    std::uint64_t bytes_written = 0;      // target bytes written and verified
    std::uint32_t loss_ppm = 0;           // data packets lost, parts per million, recent
    std::uint32_t drain_rate_kBps = 0;    // what its disk has been absorbing
    std::span<const std::byte> runs;      // run_count loss runs, decode with loss_run_at
};
inline constexpr std::size_t status_fixed_size = header_size + 4 + 4 + 4 + 4 + 8 + 4 + 4;
// Runs that fit a packet of `payload_size_max` bytes.
constexpr std::size_t status_runs_max(std::size_t payload_size_max) noexcept {
    return payload_size_max < status_fixed_size ? 0
                                                : (payload_size_max - status_fixed_size) / loss_run_size;
}

// ---- control ----------------------------------------------------------------------------
enum class control_command : std::uint8_t {
    fall_back = 1,  // you are below the group's floor: leave and fetch by unicast
    catch_up = 2,   // you are below the floor: you will be served in the catch-up pass
};

struct control_packet {
    header hdr;
    std::uint32_t receiver_id = 0;
    control_command command{};
    std::uint32_t rate_floor_kBps = 0;  // the floor the receiver fell below
};
inline constexpr std::size_t control_size = header_size + 4 + 1 + 3 + 4 + tag_size;

// ---- decoding ---------------------------------------------------------------------------
// Reads the common header. Errors: truncated, malformed (bad magic or type), version.
result<header> decode_header(std::span<const std::byte> packet) noexcept;

result<data_packet> decode_data(std::span<const std::byte> packet) noexcept;
// Decodes and checks the tag with `key` (any length). A wrong tag is errc::corrupt.
result<announce_packet> decode_announce(std::span<const std::byte> packet,
                                        std::span<const std::byte> key) noexcept;
result<status_packet> decode_status(std::span<const std::byte> packet) noexcept;
result<control_packet> decode_control(std::span<const std::byte> packet,
                                      std::span<const std::byte> key) noexcept;

loss_run loss_run_at(const status_packet& status, std::size_t index) noexcept;

// ---- encoding ---------------------------------------------------------------------------
// Each writes into out (which must hold the returned size, else errc::no_space) and returns
// the bytes written.
result<std::size_t> encode_data_header(const data_packet& packet, std::span<std::byte> out) noexcept;
result<std::size_t> encode_announce(const announce_packet& packet, std::span<const std::byte> key,
                                    std::span<std::byte> out) noexcept;
result<std::size_t> encode_status(const status_packet& packet, std::span<const loss_run> runs,
                                  std::span<std::byte> out) noexcept;
result<std::size_t> encode_control(const control_packet& packet, std::span<const std::byte> key,
                                   std::span<std::byte> out) noexcept;

}  // namespace shoal::wire
