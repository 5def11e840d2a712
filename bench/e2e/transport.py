#!/usr/bin/env python3
"""End-to-end multicast benchmark: shoal against UDPcast (udp-sender/udp-receiver) on the
same file, the same namespace topology and in the same run.

For each configuration both tools send one random file from a sender namespace to N
receiver namespaces on a bridge. Reported per tool: the mean and slowest receiver rate
(file bytes / seconds from the sender's launch to that receiver's exit), delivery (how many
receivers ended bit-identical), CPU seconds per GB for the sender and the receivers, and
how busy the whole machine was (all cores; softirq apart, since the kernel's packet work is
charged to whichever process runs).
Loss comes from nftables drops in receivers' namespaces, the 1 Gbit/s link from tc tbf
on the sender's egress, a slow disk from a 20 MB/s writer. GSO is off on every link, so
the wire carries MTU-sized frames as a real NIC would.

Run as root:  bench/e2e/transport.py [--quick] [--size-mb N] [--out FILE]
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from netlab import ROOT, busy_share, machine_cpu, sh

PREFIX = "shoal-b%d" % os.getpid()
TIMEOUT_S = 180



def ns(name):
    return "%s-%s" % (PREFIX, name)


def cpu_wrap(cmd, cpu_file):
    """Runs cmd under bash and writes the children's user+sys seconds to cpu_file."""
    quoted = " ".join("'%s'" % c.replace("'", "'\\''") for c in cmd)
    return ["bash", "-c", "%s; rc=$?; times > %s; exit $rc" % (quoted, cpu_file)]


def parse_times(path):
    try:
        user, sys_ = open(path).read().splitlines()[1].split()  # line 2: the children
        to_s = lambda t: int(t.split("m")[0]) * 60 + float(t.split("m")[1].rstrip("s"))
        return to_s(user) + to_s(sys_)
    except (OSError, ValueError):
        return float("nan")


def sha256(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
    except OSError:
        return None
    return h.hexdigest()


class Lab:
    def __init__(self, receivers):
        self.receivers = receivers
        sh("lab_up %s %d" % (PREFIX, receivers))

    def configure(self, loss_permille, lossy, link):
        for i in range(1, self.receivers + 1):
            sh("ip netns exec %s nft delete table inet shoal_loss" % ns("r%d" % i), check=False)
        for i in lossy:
            sh("lab_loss %s %d" % (ns("r%d" % i), loss_permille))
        if link:
            sh("lab_rate %s %s" % (ns("s"), link))
        else:
            sh("ip netns exec %s tc qdisc del dev eth0 root" % ns("s"), check=False)

    def down(self):
        sh("lab_down %s" % PREFIX, check=False)


def link_rates(link):
    """The send rates for a tbf link: just under it, counting Ethernet headers."""
    if not link:
        return "10G", None
    mbit = int(link.replace("gbit", "000").replace("mbit", ""))
    return "%dM" % (mbit * 98 // 100), "%dm" % (mbit * 98 // 100)


def run_tool(tool, shoal, work, image, n, link, slow, want, lossy=()):
    """One transfer; returns a dict of figures. Receivers in `slow` (a 20 MB/s disk) or
    `lossy` (a minority on a lossy link) are impaired: they are left out of the healthy
    mean and min, and their own rates are listed apart."""
    impaired = set(slow) | set(lossy)
    size = os.path.getsize(image)
    procs = []
    for i in range(1, n + 1):
        out = os.path.join(work, "out%d" % i)
        if os.path.exists(out):
            os.unlink(out)
        cpu = os.path.join(work, "cpu%d" % i)
        if tool == "shoal":
            cmd = [shoal, "recv", out, "-i", "eth0", "--key-file", os.path.join(work, "key"),
                   "--timeout", "10s", "--json"]
            if i in slow:
                cmd += ["--throttle-disk", "20M"]
        else:
            cmd = ["udp-receiver", "--file", out, "--interface", "eth0", "--nokbd",
                   "--no-progress", "--receive-timeout", "20", "--start-timeout", "30"]
            if i in slow:
                cmd = ["udp-receiver", "--pipe", "python3 %s/bench/e2e/throttle.py 20000000" % ROOT,
                       "--file", out, "--interface", "eth0", "--nokbd", "--no-progress",
                       "--receive-timeout", "20", "--start-timeout", "30"]
        full = ["ip", "netns", "exec", ns("r%d" % i), "timeout", str(TIMEOUT_S)] + cmd
        procs.append((subprocess.Popen(cpu_wrap(full, cpu), stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(work, "recv%d.log" % i), "w")), out, cpu))
    time.sleep(0.5)  # receivers listening
    rate, udpcast_rate = link_rates(link)
    if tool == "shoal":
        cmd = [shoal, "send", image, "-i", "eth0", "--key-file", os.path.join(work, "key"),
               "-n", str(n), "--wait", "30s", "--rate", rate, "--level", "0",
               "--idle-timeout", "3s", "--json"]
        if not link:
            cmd.append("--adaptive")
        if slow:
            cmd += ["--floor", "200M"]
    else:
        cmd = ["udp-sender", "--file", image, "--interface", "eth0", "--min-receivers", str(n),
               "--nokbd", "--no-progress", "--max-wait", "30"]
        if udpcast_rate:
            cmd += ["--max-bitrate", udpcast_rate]
    scpu = os.path.join(work, "cpus")
    t0 = time.monotonic()
    cpu0 = machine_cpu()
    send_json = os.path.join(work, "send.json")
    sender = subprocess.Popen(cpu_wrap(["ip", "netns", "exec", ns("s"), "timeout", str(TIMEOUT_S)] + cmd, scpu),
                              stdout=open(send_json, "w"), stderr=open(os.path.join(work, "send.log"), "w"))
    pending = list(range(n))
    done_at = [None] * n
    while pending:
        for j in list(pending):
            if procs[j][0].poll() is not None:
                done_at[j] = time.monotonic() - t0
                pending.remove(j)
        if time.monotonic() - t0 > TIMEOUT_S + 5:
            break
        time.sleep(0.01)
    busy, softirq = busy_share(cpu0, machine_cpu())
    sender.wait(timeout=TIMEOUT_S + 10)
    rates, ok, healthy_rates = [], 0, []
    rcpu = 0.0
    for j, (p, out, cpu) in enumerate(procs):
        p.wait()
        identical = sha256(out) == want
        ok += identical
        r = size / done_at[j] / 1e6 if identical and done_at[j] else 0.0
        rates.append(r)
        if (j + 1) not in impaired:
            healthy_rates.append(r)
        rcpu += parse_times(cpu)
    gb = size / 1e9
    # shoal's own view: each receiver's bytes over the time from the main pass's start to
    # its completion (no preparation, no joining).
    transfer = 0.0
    if tool == "shoal":
        try:
            rx = [r for r in json.load(open(send_json))["receivers"] if r["complete"] and r["seconds"] > 0]
            transfer = sum(size / r["seconds"] / 1e6 for r in rx) / len(rx) if rx else 0.0
        except (OSError, ValueError, KeyError):
            pass
    return {
        "transfer": transfer,
        "ok": ok, "n": n,
        "mean": sum(healthy_rates) / len(healthy_rates) if healthy_rates else 0.0,
        "min": min(healthy_rates) if healthy_rates else 0.0,
        "slow_rate": [rates[i - 1] for i in slow],
        "impaired_rate": [rates[i - 1] for i in sorted(impaired)],
        "sender_cpu_per_gb": parse_times(scpu) / gb,
        "receiver_cpu_per_gb": rcpu / n / gb,
        "machine_busy": busy, "machine_softirq": softirq,
    }


def fairness(args, work, image, want):
    """Healthy receivers' rate with one impaired receiver, against the same group with
    none, alternating the runs so that drift on a shared machine hits both alike."""
    n, link = 4, args.fair_link
    variants = [("none", 0, [], []), ("one at 5% loss", 50, [n], []), ("one 20 MB/s disk", 0, [], [n])]
    lab = Lab(n)
    runs = {(t, v[0]): [] for t in ("shoal", "udpcast") for v in variants}
    delivered = {k: [0, 0] for k in runs}
    failed = False
    try:
        for rep in range(args.reps):
            for label, loss, lossy, slow in variants:
                lab.configure(loss, lossy, link)
                for tool in ("shoal", "udpcast"):
                    r = run_tool(tool, args.shoal, work, image, n, link, slow, want, lossy=lossy)
                    runs[(tool, label)].append(r)
                    delivered[(tool, label)][0] += r["ok"]
                    delivered[(tool, label)][1] += n
                    failed |= tool == "shoal" and r["ok"] != n
                    print("rep %d %-18s %-7s healthy mean %6.1f MB/s, impaired %s, %d/%d ok"
                          % (rep + 1, label, tool, r["mean"], ["%.1f" % x for x in r["impaired_rate"]], r["ok"], n),
                          flush=True)
    finally:
        lab.down()
    median = lambda xs: sorted(xs)[len(xs) // 2]
    lines = ["| %d receivers at %s, one impaired | shoal healthy MB/s (median of %d) | shoal slowdown | shoal impaired MB/s | UDPcast healthy MB/s | UDPcast slowdown | UDPcast impaired MB/s | delivered shoal / UDPcast |" % (n, link, args.reps),
             "|---|---|---|---|---|---|---|---|"]
    base = {t: median([r["mean"] for r in runs[(t, "none")]]) for t in ("shoal", "udpcast")}
    for label, _, _, _ in variants:
        cells = []
        for t in ("shoal", "udpcast"):
            h = median([r["mean"] for r in runs[(t, label)]])
            imp = [x for r in runs[(t, label)] for x in r["impaired_rate"]]
            slowdown = "—" if label == "none" else "%+.1f%%" % ((1 - h / base[t]) * 100 if base[t] else float("nan"))
            cells += ["%.1f" % h, slowdown, "%.1f" % median(imp) if imp else "—"]
        lines.append("| %s | %s | %s/%s, %s/%s |" % (label, " | ".join(cells), delivered[("shoal", label)][0],
                                                     delivered[("shoal", label)][1], delivered[("udpcast", label)][0],
                                                     delivered[("udpcast", label)][1]))
    table = "\n".join(lines)
    print()
    print("file %d MiB random; slowdown = 1 - healthy rate / healthy rate with none impaired" % (os.path.getsize(image) >> 20))
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one small case per tool (a smoke test)")
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--shoal", default=os.path.join(ROOT, "build", "tools", "shoal"))
    ap.add_argument("--out", help="write the markdown table here too")
    ap.add_argument("--only", help="run only the cases whose label contains this text")
    ap.add_argument("--fairness", action="store_true",
                    help="how much one impaired receiver slows the healthy ones: baseline and "
                         "impaired runs alternated, --reps times each, on a --fair-link tbf link")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fair-link", default="400mbit",
                    help="a rate the 2 cores can carry to 4 receivers, so the link sets the pace")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("SKIP: needs root and iproute2", file=sys.stderr)
        return 77
    if shutil.which("udp-sender") is None:
        print("SKIP: udpcast is not installed (tools/setup installs it)", file=sys.stderr)
        return 77

    # (label, receivers, loss permille, lossy receivers, link, slow receivers)
    cases = [
        ("veth, 1 rx", 1, 0, [], None, []),
        ("veth, 4 rx", 4, 0, [], None, []),
        ("veth, 8 rx", 8, 0, [], None, []),
        ("veth, 4 rx, 1% loss", 4, 10, "all", None, []),
        ("veth, 4 rx, 5% loss", 4, 50, "all", None, []),
        ("veth, 8 rx, 1% loss", 8, 10, "all", None, []),
        ("veth, 8 rx, 5% loss", 8, 50, "all", None, []),
        ("veth, 4 rx, one at 5%", 4, 50, [4], None, []),
        ("veth, 4 rx, one 20 MB/s disk", 4, 0, [], None, [4]),
        ("1G, 1 rx", 1, 0, [], "1gbit", []),
        ("1G, 4 rx", 4, 0, [], "1gbit", []),
        ("1G, 4 rx, 1% loss", 4, 10, "all", "1gbit", []),
        ("1G, 4 rx, one at 5%", 4, 50, [4], "1gbit", []),
        ("1G, 4 rx, one 20 MB/s disk", 4, 0, [], "1gbit", [4]),
    ]
    size_mb = args.size_mb
    if args.only:
        cases = [c for c in cases if args.only in c[0]]
    if args.quick:
        cases = [("veth, 2 rx, 1% loss", 2, 10, "all", None, [])]
        size_mb = 16

    work = tempfile.mkdtemp(prefix="shoal-bench.", dir="/dev/shm")
    image = os.path.join(work, "image")
    with open(image, "wb") as f:
        f.write(os.urandom(size_mb << 20))
    with open(os.path.join(work, "key"), "wb") as f:
        f.write(os.urandom(32))
    want = sha256(image)
    if args.fairness:
        try:
            return fairness(args, work, image, want)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    rows = []
    lab = Lab(max(c[1] for c in cases))
    failed = False
    try:
        for label, n, loss, lossy, link, slow in cases:
            lossy_list = list(range(1, n + 1)) if lossy == "all" else lossy
            lab.configure(loss, lossy_list, link)
            res = {}
            for tool in ("shoal", "udpcast"):
                res[tool] = run_tool(tool, args.shoal, work, image, n, link, slow, want,
                                     lossy=lossy_list if lossy != "all" else ())
            rows.append((label, res))
            s, u = res["shoal"], res["udpcast"]
            ratio = s["mean"] / u["mean"] if u["mean"] > 0 else float("inf")
            print("%-30s shoal %6.1f MB/s (min %6.1f) %d/%d ok | udpcast %6.1f MB/s (min %6.1f) %d/%d ok | x%.2f"
                  % (label, s["mean"], s["min"], s["ok"], n, u["mean"], u["min"], u["ok"], n, ratio), flush=True)
            failed |= s["ok"] != n
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)

    lines = ["| case | shoal MB/s mean (min) | UDPcast MB/s mean (min) | shoal / UDPcast | shoal transfer phase MB/s | delivered shoal | delivered UDPcast | CPU s/GB shoal snd / rcv | CPU s/GB UDPcast snd / rcv | machine busy shoal / UDPcast (softirq) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, res in rows:
        s, u = res["shoal"], res["udpcast"]
        ratio = "%.2f" % (s["mean"] / u["mean"]) if u["mean"] > 0 else "∞ (UDPcast failed)"
        slow_note = ""
        if s["slow_rate"]:
            slow_note = " (slow rx: %.1f / %.1f)" % (s["slow_rate"][0], u["slow_rate"][0])
        lines.append("| %s%s | %.1f (%.1f) | %.1f (%.1f) | %s | %.1f | %d/%d | %d/%d | %.2f / %.2f | %.2f / %.2f | %.0f%% (%.0f%%) / %.0f%% (%.0f%%) |" % (
            label, slow_note, s["mean"], s["min"], u["mean"], u["min"], ratio, s["transfer"], s["ok"], s["n"], u["ok"], u["n"],
            s["sender_cpu_per_gb"], s["receiver_cpu_per_gb"], u["sender_cpu_per_gb"], u["receiver_cpu_per_gb"],
            100 * s["machine_busy"], 100 * s["machine_softirq"], 100 * u["machine_busy"], 100 * u["machine_softirq"]))
    table = "\n".join(lines)
    print()
    print("file %d MiB random; rates exclude nothing: sender launch to receiver exit" % size_mb)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
