#!/usr/bin/env python3
"""TFTP throughput with many clients at once: shoal's TFTP server (`shoal boot`, DHCP off)
against dnsmasq's (--enable-tftp --tftp-root), on the same machine, the same namespace
topology, the same file and in the same run.

A load generator (bench/bootsvc/tftp_load) in a client namespace keeps C transfers of one
file in flight until T have finished, each byte checked against the file; the server runs
in another namespace on a bridge. Configurations: iPXE-like (blksize 1432), OVMF-like
(blksize 1468, windowsize 4), and plain RFC 1350 (512-byte blocks). Reported per server:
file bytes per second (median of the repetitions), and the server's CPU seconds per GB;
then the ratio shoal / dnsmasq.

Run as root:  bench/e2e/tftp.py [--quick] [--clients C] [--reps R] [--size-kb K]
              [--shoal build/tools/shoal] [--load build/bench/bootsvc/tftp_load]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from netlab import ROOT, cpu_s, sh

PREFIX = "shoal-t%d" % os.getpid()



def ns(name):
    return "%s-%s" % (PREFIX, name)



def start_server(kind, args, work):
    root = os.path.join(work, "root")
    if kind == "shoal":
        cfg = os.path.join(work, "boot.json")
        with open(cfg, "w") as f:
            json.dump({"dhcp": {"enabled": False},
                       "tftp": {"root": root, "install_boot_files": False},
                       "http": {"root": root, "port": 8080}}, f)
        cmd = [args.shoal, "--log", "info", "boot", "-c", cfg]
    else:
        # dnsmasq as a TFTP server only; it serves up to 50 transfers at once by default,
        # raised here so that both serve every client at once.
        cmd = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--enable-tftp",
               "--tftp-root=" + root, "--tftp-max=%d" % (args.clients * 2),
               "--listen-address=10.77.0.1", "--bind-interfaces"]
    log = open(os.path.join(work, kind + ".log"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns("s")] + cmd, stdout=log,
                         stderr=subprocess.STDOUT)
    time.sleep(0.5)
    if p.poll() is not None:
        raise SystemExit("%s did not start: see %s" % (kind, log.name))
    return p


def run_once(kind, args, work, blksize, windowsize):
    server = start_server(kind, args, work)
    try:
        cpu0 = cpu_s(server.pid)
        cmd = ["ip", "netns", "exec", ns("r1"), args.load, "--server", "10.77.0.1",
               "--file", "boot.bin", "--expect", os.path.join(work, "root", "boot.bin"),
               "--clients", str(args.clients), "--transfers", str(args.clients * args.rounds)]
        if blksize:
            cmd += ["--blksize", str(blksize)]
        if windowsize:
            cmd += ["--windowsize", str(windowsize)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        cpu = cpu_s(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait()
    if r.returncode != 0:
        raise SystemExit("%s: tftp_load failed: %s %s" % (kind, r.stdout, r.stderr))
    out = json.loads(r.stdout)
    return out["bytes"] / out["seconds"], cpu / (out["bytes"] / 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one short repetition (smoke test)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4, help="transfers per client")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size-kb", type=int, default=1024, help="the file (ipxe.efi is ~830 KiB)")
    ap.add_argument("--shoal", default=os.path.join(ROOT, "build", "tools", "shoal"))
    ap.add_argument("--load", default=os.path.join(ROOT, "build", "bench", "bootsvc", "tftp_load"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)", file=sys.stderr)
        return 77
    if args.quick:
        args.clients, args.rounds, args.reps, args.size_kb = 8, 1, 1, 256
    configs = [("iPXE-like, blksize 1432", 1432, 0),
               ("OVMF-like, blksize 1468 windowsize 4", 1468, 4),
               ("RFC 1350, 512-byte blocks", 0, 0)]
    if args.quick:
        configs = configs[1:2]
    sh("lab_up %s 1" % PREFIX)
    try:
        with tempfile.TemporaryDirectory(dir="/dev/shm") as work:
            os.makedirs(os.path.join(work, "root"))
            with open(os.path.join(work, "root", "boot.bin"), "wb") as f:
                f.write(os.urandom(args.size_kb * 1024))
            print("TFTP, %d clients at once, %d KiB file, %d transfers per run, median of %d"
                  % (args.clients, args.size_kb, args.clients * args.rounds, args.reps))
            print("%-40s %14s %14s %8s %16s %16s" % ("", "shoal MB/s", "dnsmasq MB/s", "ratio",
                                                    "shoal CPU s/GB", "dnsmasq CPU s/GB"))
            for name, blksize, windowsize in configs:
                results = {"shoal": [], "dnsmasq": []}
                for _ in range(args.reps):
                    for kind in ("shoal", "dnsmasq"):
                        results[kind].append(run_once(kind, args, work, blksize, windowsize))
                rate = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
                cpu = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
                print("%-40s %14.1f %14.1f %8.2f %16.2f %16.2f"
                      % (name, rate["shoal"] / 1e6, rate["dnsmasq"] / 1e6,
                         rate["shoal"] / rate["dnsmasq"], cpu["shoal"], cpu["dnsmasq"]))
    finally:
        sh("lab_down %s" % PREFIX, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
