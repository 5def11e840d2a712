#!/usr/bin/env python3
"""DHCP transactions per second: shoal's full-mode server against dnsmasq, on the same
machine, the same namespace topology and in the same run.

A load generator (bench/dhcp/dhcp_load) in one namespace runs N made-up clients through
DISCOVER -> OFFER -> REQUEST -> ACK with W transactions in flight against the server in
another namespace on a bridge. Both servers hand out from the same pool, keep a lease file
in a temporary directory on tmpfs (--lease-dir, /dev/shm by default: the comparison is of
the servers, not of the disk; dnsmasq rewrites and fsyncs its whole lease file on every
change, shoal appends one line without fsync), and log nothing per packet (shoal at info level, dnsmasq with
--quiet-dhcp); dnsmasq runs with --no-ping so that neither waits before offering. Reported
per server: transactions per second (median of the repetitions), p50/p99 latency of a whole
transaction, and the server's CPU microseconds per transaction; then the ratio.

Run as root:  bench/e2e/dhcp.py [--quick] [--clients N] [--window W] [--reps R] [--lease-dir DIR]
              [--no-lease-file]
              [--serve build/tests/bootsvc/dhcp/dhcp_serve] [--load build/bench/dhcp/dhcp_load]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from netlab import ROOT, cpu_s, sh

PREFIX = "shoal-h%d" % os.getpid()
POOL = ("10.77.128.1", "10.77.255.254")



def ns(name):
    return "%s-%s" % (PREFIX, name)



def start_server(kind, serve, work, lease_file):
    if kind == "shoal":
        cmd = [serve, "--mode", "full", "-i", "eth0", "--pool", "%s-%s" % POOL, "--log", "info"]
        if lease_file:
            cmd += ["--leases", os.path.join(work, "shoal.leases")]
    else:
        cmd = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
               "--bind-interfaces", "--dhcp-range=%s,%s,255.255.0.0,12h" % POOL, "--no-ping",
               "--quiet-dhcp", "--dhcp-authoritative", "--dhcp-lease-max=100000"]
        cmd += ["--dhcp-leasefile=" + os.path.join(work, "dnsmasq.leases")] if lease_file else ["--leasefile-ro"]
    log = open(os.path.join(work, kind + ".log"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns("s")] + cmd, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(0.5)  # both bind at once; give them a moment to be ready
    if p.poll() is not None:
        raise SystemExit("%s did not start: see %s" % (kind, log.name))
    return p


def run_once(kind, args, work, seed):
    for f in ("shoal.leases", "dnsmasq.leases"):
        try:
            os.unlink(os.path.join(work, f))
        except FileNotFoundError:
            pass
    server = start_server(kind, args.serve, work, not args.no_lease_file)
    try:
        cpu0 = cpu_s(server.pid)
        r = subprocess.run(["ip", "netns", "exec", ns("r1"), args.load, "--iface", "eth0",
                            "--clients", str(args.clients), "--window", str(args.window),
                            "--seed", str(seed)], capture_output=True, text=True, timeout=300)
        cpu1 = cpu_s(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    if not r.stdout.strip():
        raise SystemExit("%s: load generator failed: %s" % (kind, r.stderr))
    res = json.loads(r.stdout)
    res["cpu_us_per_tx"] = (cpu1 - cpu0) * 1e6 / max(res["ok"], 1)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one small run per server (a smoke test)")
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-lease-file", action="store_true",
                    help="leases in memory only (shoal without --leases, dnsmasq --leasefile-ro)")
    ap.add_argument("--lease-dir", default="/dev/shm", help="where both servers keep their lease files")
    ap.add_argument("--serve", default=os.path.join(ROOT, "build", "tests", "bootsvc", "dhcp", "dhcp_serve"))
    ap.add_argument("--load", default=os.path.join(ROOT, "build", "bench", "dhcp", "dhcp_load"))
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("dnsmasq"):
        print("SKIP: needs root and dnsmasq", file=sys.stderr)
        return 77
    if args.quick:
        args.clients, args.reps = 300, 1
    work = tempfile.mkdtemp(prefix="shoal-dhcp-bench.", dir=args.lease_dir)
    try:
        sh("lab_up %s 1" % PREFIX)
        results = {}
        for rep in range(args.reps):
            for kind in ("shoal", "dnsmasq"):  # alternated, so that drift hits both
                res = run_once(kind, args, work, seed=1 + rep)
                results.setdefault(kind, []).append(res)
                if res["failed"]:
                    print("%s: %d of %d transactions failed" % (kind, res["failed"], res["clients"]),
                          file=sys.stderr)
        print("DHCP DISCOVER->OFFER->REQUEST->ACK, %d clients, %d in flight, %d repetitions (median), %s"
              % (args.clients, args.window, args.reps,
                 "leases in memory only" if args.no_lease_file else "lease files in " + args.lease_dir))
        print("| server | transactions/s | p50 ms | p99 ms | server CPU us/tx | NAKs | failed |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        med = {}
        for kind, runs in results.items():
            m = {k: statistics.median(r[k] for r in runs) for k in ("tps", "p50_ms", "p99_ms", "cpu_us_per_tx")}
            med[kind] = m
            print("| %s | %.0f | %.2f | %.2f | %.1f | %d | %d |" % (
                kind, m["tps"], m["p50_ms"], m["p99_ms"], m["cpu_us_per_tx"],
                sum(r["naks"] for r in runs), sum(r["failed"] for r in runs)))
        print("ratio shoal/dnsmasq: %.2fx transactions/s, %.2fx CPU per transaction" % (
            med["shoal"]["tps"] / med["dnsmasq"]["tps"],
            med["shoal"]["cpu_us_per_tx"] / max(med["dnsmasq"]["cpu_us_per_tx"], 1e-9)))
        failed = sum(r["failed"] for runs in results.values() for r in runs)
        return 1 if failed else 0
    finally:
        sh("lab_down %s" % PREFIX, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
