"""What the end-to-end benchmarks share: tools/netlab.sh called from Python, and a
process's CPU time."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETLAB = os.path.join(ROOT, "tools", "netlab.sh")


def sh(script, check=True):
    """Runs a bash script with tools/netlab.sh's functions (lab_up, lab_loss, ...) loaded."""
    return subprocess.run(["bash", "-c", "source %s; %s" % (NETLAB, script)], check=check,
                          env=dict(os.environ, LAB_NO_TRAP="1"), capture_output=True, text=True)


def cpu_s(pid):
    """user+system seconds of a running process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """(busy, softirq, total) jiffies of all CPUs from /proc/stat, to tell how busy the whole
    machine was between two readings: kernel work for packets (softirq, bridge copies) is
    charged to whichever process happens to run, so per-process figures miss part of it."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])  # user nice system idle iowait irq softirq steal
    return total - v[3] - v[4], v[6], total


def busy_share(before, after):
    """The share of all CPUs busy between two machine_cpu() readings, and the softirq part."""
    busy, soft, total = (a - b for a, b in zip(after, before))
    return (busy / total, soft / total) if total > 0 else (float("nan"), float("nan"))
