#!/usr/bin/env python3
"""Capture and restore throughput: shoal against partclone + zstd on the same ext4
filesystem, in the same run.

An ext4 filesystem in a file is filled with real content (files from /usr/share and
/usr/lib, as a system partition holds) by mkfs.ext4 -d. Then, each N times, alternating:
  capture  shoal image capture (multipart, the bare filesystem)   vs
           partclone.ext4 -c | zstd -T0 -3 > file
  restore  shoal image export to a new file                        vs
           zstd -d | partclone.ext4 -r into a new file
Rates are used bytes of the filesystem (what both tools read or write) per wall second.
Every restored file must be byte-identical to the original (free blocks of a fresh
filesystem are zeros in both). Page cache is warm for both tools (the source was just
written, and both read it equally), so this compares the pipelines, not the disk.

Usage: bench/e2e/image.py --shoal build/tools/shoal [--quick] [--content-mb N] [--runs N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def stage_content(dst, budget):
    """Copies real files into dst until budget bytes; returns the bytes copied."""
    total = 0
    for root in ("/usr/share", "/usr/lib"):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                src = os.path.join(dirpath, name)
                if os.path.islink(src) or not os.path.isfile(src):
                    continue
                try:
                    size = os.path.getsize(src)
                except OSError:
                    continue
                if total + size > budget:
                    continue
                rel = os.path.relpath(src, "/")
                os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
                try:
                    shutil.copyfile(src, os.path.join(dst, rel))
                except OSError:
                    continue
                total += size
                if total >= budget * 0.98:
                    return total
    return total


def used_bytes(fs):
    out = run(["dumpe2fs", "-h", fs], text=True).stdout
    f = {l.split(":")[0]: l.split(":", 1)[1].strip() for l in out.splitlines() if ":" in l}
    return (int(f["Block count"]) - int(f["Free blocks"])) * int(f["Block size"])


def timed(cmd, shell=False):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t0


def same(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--quick", action="store_true", help="small and once: the bench-smoke test")
    ap.add_argument("--content-mb", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    for tool in ("partclone.ext4", "zstd", "mkfs.ext4"):
        if shutil.which(tool) is None:
            print("skip: %s missing" % tool)
            return 77
    content_mb = 24 if a.quick else a.content_mb
    runs = 1 if a.quick else a.runs
    shoal = os.path.abspath(a.shoal)
    w = tempfile.mkdtemp(prefix="shoal-image-bench.")
    try:
        stage = os.path.join(w, "stage")
        copied = stage_content(stage, content_mb << 20)
        fs = os.path.join(w, "fs.img")
        fs_mb = int(copied / (1 << 20) * 1.6) + 64
        run(["mkfs.ext4", "-q", "-F", "-d", stage, fs, "%dM" % fs_mb])
        shutil.rmtree(stage)
        used = used_bytes(fs)
        store = os.path.join(w, "store")
        res = {"shoal capture": [], "partclone capture": [], "shoal restore": [], "partclone restore": []}
        sizes = {}
        for i in range(runs):
            shutil.rmtree(store, ignore_errors=True)
            res["shoal capture"].append(timed([shoal, "image", "capture", "--store", store, "--disk", fs,
                                               "--name", "b", "--type", "multipart", "--level", str(a.level),
                                               "--progress", "none"]))
            pc = os.path.join(w, "fs.pc.zst")
            res["partclone capture"].append(timed(
                "partclone.ext4 -q -c -s %s -o - | zstd -q -T0 -%d -c > %s" % (fs, a.level, pc), shell=True))
            out = os.path.join(w, "out-shoal.img")
            if os.path.exists(out):
                os.unlink(out)
            res["shoal restore"].append(timed([shoal, "image", "export", "--store", store, "--name", "b",
                                               "--output", out, "--progress", "none"]))
            if not same(fs, out):
                print("FAIL: shoal's restored filesystem differs from the original", file=sys.stderr)
                return 1
            out2 = os.path.join(w, "out-partclone.img")
            if os.path.exists(out2):
                os.unlink(out2)
            # partclone restores into an existing target of the filesystem's size.
            with open(out2, "wb") as f:
                f.truncate(fs_mb << 20)
            res["partclone restore"].append(timed(
                "zstd -q -d -c %s | partclone.ext4 -q -r -s - -O %s" % (pc, out2), shell=True))
            if not same(fs, out2):
                print("FAIL: partclone's restored filesystem differs from the original", file=sys.stderr)
                return 1
            stored = 0
            for dirpath, _, files in os.walk(os.path.join(store, "chunks")):
                stored += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
            sizes = {"shoal": stored, "partclone": os.path.getsize(pc)}
            os.unlink(out)
            os.unlink(out2)
        best = {k: min(v) for k, v in res.items()}
        rate = {k: used / v / 1e6 for k, v in best.items()}
        report = {
            "filesystem_bytes": fs_mb << 20, "used_bytes": used, "runs": runs, "zstd_level": a.level,
            "rate_MBps": rate,
            "capture_ratio": rate["shoal capture"] / rate["partclone capture"],
            "restore_ratio": rate["shoal restore"] / rate["partclone restore"],
            "stored_bytes": sizes, "cores": os.cpu_count(),
        }
        if a.json:
            print(json.dumps(report, indent=2))
        else:
            print("ext4 of %d MiB, %.1f MiB used (real files), best of %d, zstd -%d, %d cores"
                  % (fs_mb, used / 2**20, runs, a.level, os.cpu_count()))
            print("| what | shoal MB/s | partclone+zstd MB/s | shoal / partclone | stored MiB shoal / partclone |")
            print("|---|---|---|---|---|")
            print("| capture | %.0f | %.0f | %.2f | %.1f / %.1f |" % (
                rate["shoal capture"], rate["partclone capture"], report["capture_ratio"],
                sizes["shoal"] / 2**20, sizes["partclone"] / 2**20))
            print("| restore | %.0f | %.0f | %.2f | |" % (
                rate["shoal restore"], rate["partclone restore"], report["restore_ratio"]))
        return 0
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
