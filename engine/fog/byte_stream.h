// Forward-only byte streams for FOG image files: the pieces of one file read in order
// (FOG splits its uploads into `dNpM.img.000`, `.001`, … with split(1)), then decompressed
// (gzip/pigz, zstd, or stored as is), detected by their magic bytes.
//
// Every stream reads with a fixed-size buffer whatever the file's size, so multi-GB images
// pass through bounded memory. Errors name the piece file and the byte offset in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace shoal::fog {

class byte_stream {
public:
    virtual ~byte_stream() = default;

    // Reads up to out.size() bytes into out; returns how many. 0 means the end of the
    // stream (and only that), once out is not empty.
    virtual result<std::size_t> read(std::span<std::byte> out) = 0;

    // Where the stream stands, for error messages: "d1p1.img.001 byte 1234". Cold path.
    virtual std::string position() const = 0;
    // Bytes read so far, and where an earlier one of them came from (as position()).
    virtual std::uint64_t offset() const = 0;
    virtual std::string position_of(std::uint64_t offset) const = 0;
};

// Reads until out is full or the stream ends; returns the bytes read (< out.size() only
// at the end of the stream).
result<std::size_t> read_full(byte_stream& stream, std::span<std::byte> out);

// Bytes held in memory (tests, fuzzers). Borrows them: they must outlive the stream.
class memory_stream final : public byte_stream {
public:
    memory_stream(std::span<const std::byte> bytes, std::string name)
        : _bytes(bytes), _name(std::move(name)) {}
    result<std::size_t> read(std::span<std::byte> out) override;
    std::string position() const override;
    std::uint64_t offset() const override { return _offset; }
    std::string position_of(std::uint64_t offset) const override;

private:
    std::span<const std::byte> _bytes;
    std::size_t _offset = 0;
    std::string _name;
};

// The pieces of one file, concatenated in the order given. Opens each piece when the one
// before ends; a piece that has gone missing since it was listed is an error naming it.
class piece_stream final : public byte_stream {
public:
    static constexpr std::size_t buffer_size_bytes = 1u << 20;

    // Checks that every piece exists and is a regular file; takes the list.
    static result<std::unique_ptr<piece_stream>> open(std::vector<std::string> paths);
    ~piece_stream() override;
    piece_stream(const piece_stream&) = delete;
    piece_stream& operator=(const piece_stream&) = delete;

    result<std::size_t> read(std::span<std::byte> out) override;
    std::string position() const override;
    std::uint64_t offset() const override { return _read_bytes; }
    std::string position_of(std::uint64_t offset) const override;

    // Sum of the pieces' sizes when they were listed, and bytes read so far (progress).
    std::uint64_t total_size_bytes() const { return _total_size_bytes; }
    std::uint64_t read_bytes() const { return _read_bytes; }
    const std::vector<std::string>& paths() const { return _paths; }

private:
    explicit piece_stream(std::vector<std::string> paths) : _paths(std::move(paths)) {}
    status open_piece(std::size_t index);

    std::vector<std::string> _paths;
    std::vector<std::uint64_t> _sizes;  // of each piece when listed
    std::size_t _piece = 0;             // index into _paths of the open piece
    int _fd = -1;
    std::uint64_t _piece_offset = 0;
    std::uint64_t _total_size_bytes = 0;
    std::uint64_t _read_bytes = 0;
};

enum class compression : std::uint8_t { none, gzip, zstd };
std::string_view compression_name(compression c) noexcept;

// Decompresses what an inner stream holds, detected from its first bytes:
//   1f 8b           gzip; any number of concatenated members (pigz, cat a.gz b.gz)
//   28 b5 2f fd     zstd; any number of frames (skippable frames are skipped)
//   anything else   stored as is (FOG's uncompressed formats 3 and 4)
// A stream that ends inside a gzip member or a zstd frame is truncated: an error naming
// the piece where it ended. Data after the last gzip member that is not another member is
// an error too, not ignored.
class decoded_stream final : public byte_stream {
public:
    static constexpr std::size_t input_buffer_size_bytes = 1u << 20;
    // zstd frames may ask for a window of at most 2^27 bytes (128 MiB), the zstd CLI's
    // own default limit; FOG's `zstdmt --ultra -22` needs exactly that.
    static constexpr int zstd_window_log_max = 27;

    static result<std::unique_ptr<decoded_stream>> open(std::unique_ptr<byte_stream> inner);
    ~decoded_stream() override;
    decoded_stream(const decoded_stream&) = delete;
    decoded_stream& operator=(const decoded_stream&) = delete;

    result<std::size_t> read(std::span<std::byte> out) override;
    std::string position() const override;
    std::uint64_t offset() const override { return _decoded_bytes; }
    std::string position_of(std::uint64_t offset) const override;

    compression kind() const { return _kind; }
    std::uint64_t decoded_bytes() const { return _decoded_bytes; }
    byte_stream& inner() { return *_inner; }

private:
    explicit decoded_stream(std::unique_ptr<byte_stream> inner);
    result<std::size_t> read_gzip(std::span<std::byte> out);
    result<std::size_t> read_zstd(std::span<std::byte> out);
    status refill();  // more input into _in when it is used up; sets _inner_done at the end

    std::unique_ptr<byte_stream> _inner;
    compression _kind = compression::none;
    std::vector<std::byte> _in;
    std::size_t _in_begin = 0;  // unread input is _in[_in_begin, _in_end)
    std::size_t _in_end = 0;
    bool _inner_done = false;
    bool _in_member = false;          // inside a gzip member or a zstd frame
    std::uint64_t _member_start = 0;  // where it began, as an offset of the inner stream
    void start_member() { _member_start = _inner->offset() - (_in_end - _in_begin); }
    error corrupt(std::string_view codec, std::string_view why) const;
    bool _done = false;
    std::uint64_t _decoded_bytes = 0;
    void* _zlib = nullptr;  // z_stream, kept opaque so zlib.h stays out of this header
    void* _zstd = nullptr;  // ZSTD_DStream
};

}  // namespace shoal::fog
