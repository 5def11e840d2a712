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
