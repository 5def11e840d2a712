#!/usr/bin/env python3
"""Deploying a store image: multicast to N receivers (`shoal send --image`) against a local
`shoal image restore` of the same image, in the same run.

A disk image (MBR, one ext4 partition at 1 MiB filled with real files from /usr/share and
/usr/lib by mkfs.ext4 -d) is captured into a store (multipart: restores are byte-exact).
Then, each N times, alternating:
  restore  shoal image restore onto a new file, on this machine (no network)
  deploy   shoal send --image from a sender namespace to N receiver namespaces on a bridge,
           each writing a new disk file (tools/netlab.sh; GSO off, MTU-sized frames)
Rates are the image's used bytes per wall second: for the deploy, from the sender's launch
(receivers already listening) to the slowest receiver's exit. Every written disk must be
byte-identical to the restore's. The ratio says how close a room of PCs gets to what one
PC restoring from a local store would do; both write through this machine's page cache
and share its 2 cores, so the deploy also pays for N writers and the packet path.

Run as root:  bench/e2e/imgcast.py --shoal build/tools/shoal [--quick] [--receivers N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from image import stage_content
from netlab import sh

PREFIX = "shoal-ib%d" % os.getpid()
TIMEOUT_S = 300


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def same(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--quick", action="store_true", help="small and once: the bench-smoke test")
    ap.add_argument("--content-mb", type=int, default=400)
    ap.add_argument("--receivers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", default="950M", help="the sender's pace, IP-layer bits/s")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("skip: needs root (namespaces)")
        return 77
    for tool in ("mkfs.ext4", "sfdisk", "ip", "nft"):
        if shutil.which(tool) is None:
            print("skip: %s missing" % tool)
            return 77
    content_mb = 24 if a.quick else a.content_mb
    runs = 1 if a.quick else a.runs
    receivers = 2 if a.quick else a.receivers
    shoal = os.path.abspath(a.shoal)
    w = tempfile.mkdtemp(prefix="shoal-imgcast-bench.")
    try:
        stage = os.path.join(w, "stage")
        copied = stage_content(stage, content_mb << 20)
        disk = os.path.join(w, "disk.img")
        fs_mb = int(copied / (1 << 20) * 1.6) + 64
        run(["truncate", "-s", "%dM" % (fs_mb + 2), disk])
        subprocess.run(["sfdisk", "-q", disk], input=b"start=2048, type=83\n", check=True,
                       stdout=subprocess.DEVNULL)
        run(["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", stage, disk, "%dM" % fs_mb])
        shutil.rmtree(stage)
        store = os.path.join(w, "store")
        run([shoal, "image", "capture", "--store", store, "--disk", disk, "--name", "b",
             "--type", "multipart", "--progress", "none"])
        info = json.loads(run([shoal, "image", "info", "b", "--store", store, "--json"]).stdout)
        used = sum(r["used_bytes"] for d in info["disks"] for r in d["regions"])
        sh("lab_up %s %d" % (PREFIX, receivers))
        key = os.path.join(w, "key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        restore_s, deploy_s, send_cpu = [], [], []
        wire_share = float("nan")
        ref = os.path.join(w, "restored.img")
        for i in range(runs):
            if os.path.exists(ref):
                os.unlink(ref)
            t0 = time.monotonic()
            run([shoal, "image", "restore", "--store", store, "--name", "b", "--disk", ref,
                 "--progress", "none"])
            restore_s.append(time.monotonic() - t0)

            outs = [os.path.join(w, "r%d.img" % j) for j in range(1, receivers + 1)]
            for o in outs:
                if os.path.exists(o):
                    os.unlink(o)
            procs = [subprocess.Popen(
                ["timeout", str(TIMEOUT_S), "ip", "netns", "exec", "%s-r%d" % (PREFIX, j + 1), shoal,
                 "recv", outs[j], "-i", "eth0", "--key-file", key],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for j in range(receivers)]
            time.sleep(0.5)  # listening before the sender starts
            t0 = time.monotonic()
            sender = subprocess.Popen(
                ["timeout", str(TIMEOUT_S), "ip", "netns", "exec", "%s-s" % PREFIX, shoal, "send",
                 "--image", "b", "--store", store, "-i", "eth0", "--key-file", key,
                 "--receivers", str(receivers), "--wait", "30s", "--rate", a.rate,
                 "--idle-timeout", "2s", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for p in procs:
                _, err = p.communicate()
                if p.returncode != 0:
                    print("FAIL: a receiver exited %d: %s" % (p.returncode, err.decode()[-400:]),
                          file=sys.stderr)
                    return 1
            deploy_s.append(time.monotonic() - t0)
            out, _ = sender.communicate()
            sent = json.loads(out)
            send_cpu.append(sent["cpu_seconds"])
            wire_share = sent["wire_bytes"] / sent["bytes"]
            for o in outs:
                if not same(o, ref):
                    print("FAIL: %s differs from shoal image restore's result" % o, file=sys.stderr)
                    return 1
        restore_rate = used / min(restore_s) / 1e6
        deploy_rate = used / min(deploy_s) / 1e6
        report = {
            "disk_bytes": (fs_mb + 2) << 20, "used_bytes": used, "receivers": receivers,
            "runs": runs, "rate": a.rate, "cores": os.cpu_count(),
            "restore_MBps": restore_rate, "deploy_MBps_per_receiver": deploy_rate,
            "deploy_MBps_all_receivers": deploy_rate * receivers,
            "ratio_per_receiver": deploy_rate / restore_rate,
            "sender_cpu_s": min(send_cpu), "wire_bytes_per_used_byte": wire_share,
        }
        if a.json:
            print(json.dumps(report, indent=2))
        else:
            print("disk of %d MiB, ext4 with %.1f MiB used (real files), %.2f wire bytes per used "
                  "byte, best of %d, --rate %s, %d cores"
                  % (fs_mb + 2, used / 2**20, wire_share, runs, a.rate, os.cpu_count()))
            print("| what | MB/s per disk | disks | MB/s written in all | per disk / local restore |")
            print("|---|---|---|---|---|")
            print("| shoal image restore (local) | %.0f | 1 | %.0f | 1.00 |" % (restore_rate, restore_rate))
            print("| shoal send --image, multicast | %.0f | %d | %.0f | %.2f |" % (
                deploy_rate, receivers, deploy_rate * receivers, report["ratio_per_receiver"]))
        return 0
    finally:
        sh("lab_down %s" % PREFIX, check=False)
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
