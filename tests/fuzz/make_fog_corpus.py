#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_partclone and fuzz_fog_sidecars (committed; run again
when a format changes): small partclone streams of each kind, plain, gzip (two members)
and zstd, and FOG's sidecar files, each behind the target's mode byte.
Usage: tests/fuzz/make_fog_corpus.py tests/fuzz/corpus"""
import gzip, os, struct, subprocess, sys, zlib

out = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))


def crc(state, data):  # partclone's CRC32: zlib's without the inversions
    return zlib.crc32(data, state ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def v2(total=40, bs=512, mode=0x20, cs_size=4, bpc=3, reseed=1, used=None):
    used = used or [i % 5 != 2 for i in range(total)]
    h = b"partclone-image\0" + b"0.3.23".ljust(14, b"\0") + b"0002" + struct.pack("<H", 0xC0DE)
    h += b"EXTFS".ljust(16, b"\0") + struct.pack("<QQQQI", total * bs, total, sum(used), sum(used), bs)
    h += struct.pack("<IHHHHIBB", 18, 2, 64, mode, cs_size, bpc, reseed, 1)
    h += struct.pack("<I", crc(0xFFFFFFFF, h))
    bm = bytearray((total + 7) // 8)
    for i, u in enumerate(used):
        if u:
            bm[i // 8] |= 1 << (i % 8)
    s = h + bytes(bm) + struct.pack("<I", crc(0xFFFFFFFF, bytes(bm)))
    c, n = 0xFFFFFFFF, 0
    for i, u in enumerate(used):
        if not u:
            continue
        b = bytes((i * 131 + k * 7) & 0xFF for k in range(bs))
        s += b
        if mode == 0:
            continue
        c, n = crc(c, b), n + 1
        if n == bpc:
            s += struct.pack("<I", c)
            n = 0
            if reseed:
                c = 0xFFFFFFFF
    if mode != 0 and n:
        s += struct.pack("<I", c)
    return s


def v1(total=20, bs=512):
    used = [i % 3 != 1 for i in range(total)]
    h = b"partclone-image" + b"EXTFS".ljust(15, b"\0") + b"0001" + b"\0\0"
    h += struct.pack("<iQQQ", bs, total * bs, total, sum(used))
    h = h.ljust(4160, b"\0") + bytes(1 if u else 0 for u in used) + b"BiTmAgIc"
    c = 0xFFFFFFFF
    for i, u in enumerate(used):
        if u:
            b = bytes((i + k) & 0xFF for k in range(bs))
            c = crc(c, bytes([b[0]]) * bs)
            h += b + struct.pack("<I", c)
    return h


def save(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


none = v2(mode=0, cs_size=0, bpc=0)
save("fuzz_partclone", "v2_crc32", b"\0" + v2())
save("fuzz_partclone", "v2_crc32_no_reseed", b"\0" + v2(bpc=7, reseed=0))
save("fuzz_partclone", "v2_none", b"\0" + none)
save("fuzz_partclone", "v2_fix_crcs", b"\3" + v2(total=9))
save("fuzz_partclone", "v2_gzip_two_members", b"\4" + gzip.compress(none[:300]) + gzip.compress(none[300:]))
save("fuzz_partclone", "v2_zstd", b"\4" + subprocess.run(["zstd", "-q", "-c"], input=none, capture_output=True, check=True).stdout)
save("fuzz_partclone", "v1", b"\0" + v1())
data = os.path.join(here, "..", "engine", "fog", "data")
for i, name in enumerate(["dos.partitions", "gpt.partitions"]):
    with open(os.path.join(data, name), "rb") as f:
        save("fuzz_fog_sidecars", name, b"\0" + f.read())
save("fuzz_fog_sidecars", "logical.partitions", b"\0label: dos\nunit: sectors\n/dev/sda1 : start=2048, size=2048, type=83\n/dev/sda2 : start=4096, size=8192, type=5\n/dev/sda5 : start=6144, size=2048, type=83\n")
save("fuzz_fog_sidecars", "fixed_size_partitions", b"\1:1:3")
save("fuzz_fog_sidecars", "original.fstypes", b"\2/dev/sda2 ntfs\n/dev/nvme0n1p3 extfs\n")
save("fuzz_fog_sidecars", "original.swapuuids", b"\3" + b"5 0a1b2c3d-0000-4000-8000-123456789abc\n")
save("fuzz_fog_sidecars", "size", b"\4" + b"1:500107862016\n")
