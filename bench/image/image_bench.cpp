// What chunk size to cut images into: zstd compression (level 3) plus SHA-256 of raw and
// stored bytes per core, the decompress+verify side, and the compression ratio, by chunk
// size, on real disk content (files from /usr/lib and /usr/share, as a system partition
// holds). docs/images.md reads the figures.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include <benchmark/benchmark.h>
#include <zstd.h>

#include "image/manifest.h"

namespace {

constexpr std::size_t corpus_size = 48u << 20;

// Real files, concatenated as a filesystem would hold them (in directory order).
const std::vector<std::byte>& corpus() {
    static const std::vector<std::byte> data = [] {
        std::vector<std::byte> out;
        out.reserve(corpus_size);
        for (const char* root : {"/usr/lib/x86_64-linux-gnu", "/usr/share/doc", "/usr/lib"}) {
            std::error_code ec;
            for (auto it = std::filesystem::recursive_directory_iterator(
                     root, std::filesystem::directory_options::skip_permission_denied, ec);
                 it != std::filesystem::recursive_directory_iterator() && out.size() < corpus_size;
                 it.increment(ec)) {
                if (ec || !it->is_regular_file(ec) || it->is_symlink(ec)) {
                    continue;
                }
                std::ifstream f(it->path(), std::ios::binary);
                std::vector<char> buf((std::istreambuf_iterator<char>(f)),
                                      std::istreambuf_iterator<char>());
                const std::size_t n = std::min(buf.size(), corpus_size - out.size());
                const auto* p = reinterpret_cast<const std::byte*>(buf.data());
                out.insert(out.end(), p, p + n);
                // Filesystems allocate whole 4 KiB blocks: the tail of a file's last block is
                // zeros.
                out.resize(std::min(corpus_size, (out.size() + 4095) / 4096 * 4096));
            }
        }
        out.resize(corpus_size);
        return out;
    }();
    return data;
}

void compress_chunks(benchmark::State& state) {
    const auto chunk = static_cast<std::size_t>(state.range(0));
    const auto level = static_cast<int>(state.range(1));
    const auto& data = corpus();
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    std::vector<std::byte> frame(ZSTD_compressBound(chunk));
    std::size_t stored = 0;
    std::size_t raw = 0;
    for (auto _ : state) {
        for (std::size_t off = 0; off < data.size(); off += chunk) {
            const std::size_t n = std::min(chunk, data.size() - off);
            auto h = shoal::image::sha256_of({data.data() + off, n});
            benchmark::DoNotOptimize(h);
            const std::size_t c =
                ZSTD_compress2(cctx, frame.data(), frame.size(), data.data() + off, n);
            auto s = shoal::image::sha256_of({frame.data(), c});
            benchmark::DoNotOptimize(s);
            stored += c;
            raw += n;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(raw));
    state.counters["ratio"] = static_cast<double>(raw) / static_cast<double>(stored);
    ZSTD_freeCCtx(cctx);
}

void decompress_chunks(benchmark::State& state) {
    const auto chunk = static_cast<std::size_t>(state.range(0));
    const auto& data = corpus();
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    std::vector<std::vector<std::byte>> frames;
    for (std::size_t off = 0; off < data.size(); off += chunk) {
        const std::size_t n = std::min(chunk, data.size() - off);
        std::vector<std::byte> f(ZSTD_compressBound(n));
        f.resize(ZSTD_compressCCtx(cctx, f.data(), f.size(), data.data() + off, n, 3));
        frames.push_back(std::move(f));
    }
    std::vector<std::byte> out(chunk);
    std::size_t raw = 0;
    for (auto _ : state) {
        for (const auto& f : frames) {
            auto s = shoal::image::sha256_of(f);
            benchmark::DoNotOptimize(s);
            const std::size_t n =
                ZSTD_decompressDCtx(dctx, out.data(), out.size(), f.data(), f.size());
            auto h = shoal::image::sha256_of({out.data(), n});
            benchmark::DoNotOptimize(h);
            raw += n;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(raw));
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
}

}  // namespace

BENCHMARK(compress_chunks)
    ->ArgsProduct({{256 << 10, 1 << 20, 4 << 20, 16 << 20}, {3}})
    ->ArgsProduct({{4 << 20}, {1, 6}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(decompress_chunks)
    ->Arg(256 << 10)
    ->Arg(1 << 20)
    ->Arg(4 << 20)
    ->Arg(16 << 20)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
