#!/usr/bin/env python3
"""FOG import throughput against partclone itself, in the same run.

Makes an ext4 partition of typical content (a copy of /usr/share and /usr/lib up to
--content-mb), captures it as FOS does (`partclone.ext4 -c -a0 | zstd -T0`, split into
200 MiB pieces) with d1.partitions and d1.mbr, then times
  chkimg:   cat PIECES | zstd -dc | partclone.chkimg -s -
  restore:  zstd -dc PIECES | partclone.restore -O FILE       (FOG's deploy, to a file)
  shoal:    shoal image import-fog DIR      (read, verify, chunk, compress, store)
and reports MB/s of used data for both and their ratio. Root (partclone insists).
  bench/e2e/fog_import.py --shoal build/tools/shoal [--content-mb 800] [--quick]
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
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def timed(cmd):
    t = time.monotonic()
    run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--content-mb", type=int, default=800)
    ap.add_argument("--quick", action="store_true", help="smoke test: 40 MB, one pass")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (partclone refuses to run without)")
        return 77
    for tool in ("partclone.ext4", "partclone.chkimg", "zstd", "mkfs.ext4", "sfdisk"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (tools/setup)")
            return 77
    content_mb = 40 if args.quick else args.content_mb
    shoal = os.path.abspath(args.shoal)
    work = tempfile.mkdtemp(prefix="shoal-fog-bench.")
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        budget = content_mb << 20
        for top in ("/usr/share", "/usr/lib"):
            for root, dirs, files in os.walk(top):
                for f in files:
                    p = os.path.join(root, f)
                    if budget <= 0 or not os.path.isfile(p) or os.path.islink(p):
                        continue
                    size = os.path.getsize(p)
                    if size > budget:
                        continue
                    dst = os.path.join(src, os.path.relpath(p, "/"))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copyfile(p, dst)
                    budget -= size
        part_mb = content_mb * 3 // 2 + 64
        part = os.path.join(work, "part.img")
        run(["truncate", "-s", f"{part_mb}M", part])
        run(["mkfs.ext4", "-q", "-d", src, part])
        shutil.rmtree(src)
        fog = os.path.join(work, "fog")
        os.makedirs(fog)
        disk = os.path.join(work, "disk.img")
        run(["truncate", "-s", f"{part_mb + 2}M", disk])
        run(["sfdisk", "-q", disk], input=f"label: dos\nstart=2048, size={part_mb}M, type=83\n".encode())
        with open(os.path.join(fog, "d1.partitions"), "wb") as f:
            run(["sfdisk", "-d", disk], stdout=f)
        run(["dd", f"if={disk}", f"of={fog}/d1.mbr", "bs=512", "count=2048", "status=none"])
        run(f"partclone.ext4 -c -s {part} -o - -a0 -L {work}/pc.log 2>/dev/null | zstd -q -T0 "
            f"| split -a 3 -d -b 200M - {fog}/d1p1.img.")
        pieces = " ".join(sorted(os.path.join(fog, p) for p in os.listdir(fog) if p.startswith("d1p1.img.")))
        plan = json.loads(subprocess.run([shoal, "image", "import-fog", fog, "--name", "x", "--dry-run", "--json"],
                                         check=True, capture_output=True).stdout)
        used = plan["used_bytes"]
        rounds = 1 if args.quick else 3
        base, rest, ours = [], [], []
        target = os.path.join(work, "target.img")
        for i in range(rounds):
            base.append(timed(f"cat {pieces} | zstd -dc | partclone.chkimg -s - -L {work}/chk.log"))
            run(["truncate", "-s", f"{part_mb}M", target])
            rest.append(timed(f"cat {pieces} | zstd -dc | partclone.restore -s - -O {target} -L {work}/rs.log"))
            os.unlink(target)
            store = os.path.join(work, f"store{i}")
            ours.append(timed([shoal, "image", "import-fog", fog, "--name", "bench", "--store", store,
                               "--progress", "none"]))
            shutil.rmtree(store)
        b, r, o = min(base), min(rest), min(ours)
        print(f"used data: {used / 1e6:.0f} MB of {part_mb} MiB ext4, {rounds} round(s), best of each")
        print(f"| what | MB/s of used data |")
        print(f"|---|---|")
        print(f"| zstd -dc \\| partclone.chkimg | {used / b / 1e6:.0f} |")
        print(f"| zstd -dc \\| partclone.restore to a file | {used / r / 1e6:.0f} |")
        print(f"| shoal image import-fog | {used / o / 1e6:.0f} |")
        print(f"| shoal / chkimg, shoal / restore | {b / o:.2f}, {r / o:.2f} |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
