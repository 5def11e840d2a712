#!/usr/bin/env bash
# Issue 8 end to end: from power-on to a deployed, booting disk, in QEMU VMs (TCG) on a
# bridge in a namespace with only shoald beside them (its DHCP, TFTP, HTTP, API and tasks).
#   1. a master VM with a real installed Debian on its disk (tools/mkmasterdisk: debootstrap,
#      kernel, grub) PXE-boots the client OS (tools/mkclientos), quick-registers with its
#      inventory, and its disk is captured to an image;
#   2. four blank VMs PXE-boot, quick-register, get a multicast task each through the API,
#      and one session sends them the image;
#   3. each boots from its own disk (-boot c) into the deployed system, which prints
#      SHOAL-DEPLOYED-UP on its serial console.
# Every step is checked from the API (hosts and their inventory, tasks' states and figures,
# the session) and on the consoles. Round 2 repeats 2 and 3 with VM 4's link dropping 5% of
# its packets (nftables on the bridge): it still ends with a booting disk; the per-VM times
# show whether the others waited for it.
# Usage: client_e2e_test.sh SHOAL SHOALD SOURCE_DIR BUILD_DIR   (root; exits 77 otherwise)
# Env: ROUNDS="1 2" (which rounds), CAPTURE=agent|host (a capture task in the master VM, or
# `shoal image capture` on the server's side), RATE_BPS (the session's rate), MASTER_DISK=FILE (a bootable disk instead of
# tools/mkmasterdisk's), VM_MEM_MB=448, KEEP=1 (keep the work dir and the serial logs).
set -euo pipefail
shoal=$(realpath "$1")
shoald=$(realpath "$2")
src=$(realpath "$3")
build=$(realpath "$4")
. "$src/tools/netlab.sh"
lab_need_root
for tool in qemu-system-x86_64 nft curl python3 depmod cpio; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (tools/setup installs it)" >&2; exit 77; }
done
[ -e /dev/net/tun ] || { echo "SKIP: no /dev/net/tun" >&2; exit 77; }

P=ce$$
work=$(mktemp -d /tmp/shoal-e2e-XXXXXX)
vm_pids=()
shoald_pid=
cleanup() {
  for p in "${vm_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$shoald_pid" ] && kill "$shoald_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  lab_down "$P"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
LAB_NO_TRAP=1
trap cleanup EXIT
fail() {
  for f in "$work"/*.serial.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done >&2
  echo "--- shoald log (tail)" >&2; tail -n 40 "$work/shoald.log" >&2 || true
  echo "FAIL: $*" >&2
  exit 1
}
pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
declare -A phase

# --- the disks and the client OS (both built once per build directory)
t0=$(now)
master=${MASTER_DISK:-}
if [ -z "$master" ]; then
  [ -x "$src/tools/mkmasterdisk" ] || { echo "SKIP: no tools/mkmasterdisk and no MASTER_DISK" >&2; exit 77; }
  master=$build/masterdisk/master.img
  if [ ! -f "$master" ]; then
    mkdir -p "$build/masterdisk"
    "$src/tools/mkmasterdisk" "$master.tmp" > "$build/masterdisk/build.log" 2>&1 ||
      { tail -20 "$build/masterdisk/build.log"; fail "tools/mkmasterdisk"; }
    mv "$master.tmp" "$master"
  fi
fi
clientos=$build/clientos-agent
if [ ! -f "$clientos/initrd.img" ] || [ "$shoal" -nt "$clientos/initrd.img" ] ||
   [ "$src/tools/mkclientos" -nt "$clientos/initrd.img" ]; then
  # The kernel .deb of the PXE test's client OS, when there is one: no second download.
  mkdir -p "$clientos/.cache"
  ls "$build"/clientos/.cache/linux-image-*.deb >/dev/null 2>&1 && cp -n "$build"/clientos/.cache/linux-image-*.deb "$clientos/.cache/"
  "$src/tools/mkclientos" "$clientos" "$shoal" > "$work/mkclientos.log" 2>&1 ||
    { cat "$work/mkclientos.log"; fail "tools/mkclientos"; }
fi
phase[prepare]=$(since "$t0")
master_bytes=$(stat -c %s "$master")
ok "master disk $master ($((master_bytes >> 20)) MiB) and the client OS ($(stat -c %s "$clientos/initrd.img") bytes of initrd)"

# --- the lab: shoald at 10.77.0.1 (namespace P-s), the VMs' taps on the bridge (P-br)
lab_up "$P" 0
for vm in 0 1 2 3 4; do
  ip -n "$P-br" tuntap add dev "tap$vm" mode tap
  ip -n "$P-br" link set "tap$vm" master br0 up
done
for _ in $(seq 50); do
  ip -n "$P-s" -6 addr show dev eth0 scope link | grep -q tentative || break
  sleep 0.1
done
mkdir -p "$work/http/clientos" "$work/tftp" "$work/web" "$work/store"
cp "$clientos/vmlinuz" "$clientos/initrd.img" "$work/http/clientos/"
server=http://10.77.0.1
# The session's rate: 32 Mbit/s by default (RATE_BPS), what four TCG VMs sharing two busy
# cores take in (at the default 900 Mbit/s they keep ~30% of the main pass and crawl
# through catch-up at about a chunk a minute).
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail and
# panic ("IO-APIC + timer doesn't work!"), seen here; panic=5 turns any panic into a quick
# exit (-no-reboot) instead of a hang until the VM's timeout.
cat > "$work/shoald.json" <<JSON
{
  "store": "sqlite://$work/shoald.db",
  "images": "$work/store",
  "clientos": "$work/http/clientos",
  "web": "$work/web",
  "admin": {"user": "admin", "password": "lab-admin-password"},
  "boot": {"http": {"port": 80, "root": "$work/http"},
           "tftp": {"root": "$work/tftp"},
           "dhcp": {"enabled": true, "mode": "full", "interfaces": ["eth0"],
                    "leases_path": "$work/dhcp.leases",
                    "pools": [{"first": "10.77.3.10", "last": "10.77.3.100"}]},
           "ipxe": {"menu_default": "quickreg", "menu_timeout_ms": 1000,
                    "kernel_args": "console=ttyS0,115200 quiet no_timer_check panic=5 shoal.failwait=3"}},
  "tasks": {"interface": "eth0", "session_secret_file": "$work/session-secret",
            "rate_bps": ${RATE_BPS:-32000000},
            "wait_max_s": 300, "gather_s": 10, "finish_grace_s": 60,
            "resume_wait_s": 30, "tick_ms": 200}
}
JSON
ip netns exec "$P-s" "$shoald" --config "$work/shoald.json" --check > "$work/check.log" 2>&1 ||
  { cat "$work/check.log"; fail "shoald --check"; }
ip netns exec "$P-s" "$shoald" --config "$work/shoald.json" > "$work/shoald.log" 2>&1 &
shoald_pid=$!
for _ in $(seq 100); do
  ip netns exec "$P-s" curl -sf -o /dev/null "$server/boot" && break
  kill -0 "$shoald_pid" 2>/dev/null || fail "shoald exited at start"
  sleep 0.1
done
token=$(ip netns exec "$P-s" curl -sf -X POST "$server/api/v1/login" \
          -d '{"user":"admin","password":"lab-admin-password"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || fail "login"
api() {  # api METHOD PATH [BODY]
  ip netns exec "$P-s" curl -sS -X "$1" -H "Authorization: Bearer $token" ${3:+-d "$3"} "$server/api/v1$2"
}
ok "shoald serves DHCP, TFTP, HTTP and the API at $server"

mac_of() { printf '52:54:00:e2:e0:%02x' "$1"; }
# Starts VM N in the background (its pid in vm_pid[N]); boot: n (network) or c (its disk).
declare -A vm_pid vm_t0 vm_t1 vm_log
start_vm() {  # N DISK BOOT LOGNAME
  local n=$1 disk=$2 boot=$3 log=$4
  vm_t0[$n]=$(now)
  ip netns exec "$P-br" timeout "${VM_TIMEOUT_S:-1500}" qemu-system-x86_64 -accel tcg \
    -m "${VM_MEM_MB:-448}" -smp 1 -nographic -no-reboot -display none -monitor none \
    -serial "file:$work/$log.serial.log" \
    -drive "file=$disk,if=virtio,format=${disk##*.},cache=unsafe" \
    -netdev "tap,id=n0,ifname=tap$n,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=$(mac_of "$n")" -boot "$boot" \
    > "$work/$log.qemu.log" 2>&1 &
  vm_pid[$n]=$!
  vm_log[$n]=$log
  # When it powers off, whichever order they end in (wait_vm waits in VM order).
  (while kill -0 "${vm_pid[$n]}" 2>/dev/null; do sleep 0.5; done; now > "$work/$log.end") &
  vm_pids+=("${vm_pid[$n]}")
}
wait_vm() {  # N: waits for it to power off; records the time
  wait "${vm_pid[$1]}" || true
  for _ in $(seq 20); do [ -s "$work/${vm_log[$1]}.end" ] && break; sleep 0.5; done
  vm_t1[$1]=$(cat "$work/${vm_log[$1]}.end" 2>/dev/null || now)
}
host_json() {  # MAC -> the host's record, or nothing
  api GET "/hosts?limit=100" | python3 -c '
import json, sys
for h in json.load(sys.stdin)["items"]:
    if h["mac"] == sys.argv[1]: print(json.dumps(h))' "$1"
}
wait_registered() {  # TIMEOUT_S N...: waits until each VM's host exists with an inventory
  local limit=$1 n deadline
  shift
  deadline=$(( $(date +%s) + limit ))
  for n in "$@"; do
    until host_json "$(mac_of "$n")" | python3 -c '
import json, sys
h = json.loads(sys.stdin.read() or "null")
inv = json.loads(h["inventory"]) if h and isinstance(h["inventory"], str) else (h or {}).get("inventory")
sys.exit(0 if inv else 1)' 2>/dev/null; do
      [ "$(date +%s)" -lt "$deadline" ] || fail "VM $n ($(mac_of "$n")) did not register with an inventory in ${limit}s"
      if ! kill -0 "${vm_pid[$n]}" 2>/dev/null; then
        host_json "$(mac_of "$n")" | grep -q . || fail "VM $n stopped before it registered"
      fi
      sleep 2
    done
  done
}

# Quick registration: each VM PXE-boots with no task, the menu's default (quickreg) boots
# the client OS, the agent registers the PC with its inventory and reboots it (-no-reboot:
# QEMU exits).
quick_register() {  # LOGPREFIX N...
  local prefix=$1 n
  shift
  for n in "$@"; do start_vm "$n" "$work/disk$n.${disk_fmt[$n]}" n "$prefix-vm$n-quickreg"; done
  wait_registered 900 "$@"
  for n in "$@"; do
    wait_vm "$n"
    grep -aq "shoal agent: registered $(mac_of "$n")" "$work/$prefix-vm$n-quickreg.serial.log" ||
      fail "VM $n: no registration line on its console"
  done
}
# A task through the API for VM N: prints its id.
make_task() {  # N KIND
  local hid
  hid=$(host_json "$(mac_of "$1")" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  api POST /tasks "{\"kind\":\"$2\",\"host_id\":$hid,\"image_id\":$image_id,\"shutdown\":\"poweroff\"}" > "$work/task.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d.get("state")=="queued", d; print(d["id"])' \
    "$work/task.json" || { cat "$work/task.json" >&2; fail "task for VM $1"; }
}
declare -A disk_fmt

# --- phase 1: the master VM registers; its disk is captured to an image
t0=$(now)
cp --sparse=always "$master" "$work/disk0.raw"  # the VM's own copy: the capture reads $master
disk_fmt[0]=raw
quick_register p1 0
host_json "$(mac_of 0)" > "$work/master-host.json"
python3 - "$work/master-host.json" "$master_bytes" <<'PY' || fail "the master's inventory"
import json, sys
h = json.load(open(sys.argv[1]))
inv = h["inventory"] if isinstance(h["inventory"], dict) else json.loads(h["inventory"])
text = json.dumps(inv)
# the VM's disk, with its size, and its NIC with its MAC are in what it reported
assert sys.argv[2] in text, "no disk of the master's size: " + text[:600]
assert h["mac"] in text.lower(), "no NIC with the host's MAC: " + text[:600]
print("  master:", h["name"], text[:300])
PY
phase[p1-register]=$(since "$t0")
ok "phase 1: the master VM PXE-booted the client OS and registered with its inventory (${phase[p1-register]}s)"

t0=$(now)
image_id=$(api POST /images '{"name":"master","kind":"multi_partition_single_disk"}' |
           python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || fail "image record"
if [ "${CAPTURE:-agent}" = agent ]; then
  task=$(make_task 0 capture)
  start_vm 0 "$work/disk0.raw" n p1-vm0-capture
  wait_vm 0
  grep -aq "shoal agent: task $task complete" "$work/p1-vm0-capture.serial.log" ||
    fail "master: its console does not say the capture task completed"
  api GET "/tasks/$task" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["state"]=="complete", d' ||
    fail "the capture task is not complete in the API"
else
  # CAPTURE=host: the disk captured on the server's side (no agent capture involved).
  "$shoal" image capture --store "$work/store" --disk "$master" --name master --type multipart \
    --progress none > "$work/capture.log" 2>&1 || { cat "$work/capture.log"; fail "capture"; }
fi
api GET "/images/$image_id" > "$work/image.json"
python3 - "$work/image.json" "${CAPTURE:-agent}" <<'PY' || fail "the image's record"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "master", d
if sys.argv[2] == "agent":  # the publish filled the record in
    assert d["size_bytes"] > 0 and d["disks"], d
print("  image:", {k: d[k] for k in d if k in ("id", "name", "kind", "size_bytes", "disks")})
PY
phase[p1-capture]=$(since "$t0")
ok "phase 1: the master disk captured to image 'master' (id $image_id) in ${phase[p1-capture]}s (${CAPTURE:-agent})"

# --- phases 2 and 3, per round
run_round() {  # ROUND
  local round=$1 n
  local vms=(1 2 3 4)
  for n in "${vms[@]}"; do
    rm -f "$work/disk$n.raw"
    truncate -s "$master_bytes" "$work/disk$n.raw"
    disk_fmt[$n]=raw
  done
  if [ "$round" = 2 ]; then
    # VM 4's link drops 5% of the frames the bridge forwards to it and from it.
    ip netns exec "$P-br" nft -f - <<NFT
table bridge shoal_loss {
  chain forward {
    type filter hook forward priority 0; policy accept;
    oifname "tap4" numgen random mod 1000 < 50 drop
    iifname "tap4" numgen random mod 1000 < 50 drop
  }
}
NFT
  fi
  local t0
  t0=$(now)
  quick_register "r$round" "${vms[@]}"
  phase[r$round-register]=$(since "$t0")
  ok "round $round: 4 blank VMs PXE-booted and quick-registered with their inventory (${phase[r$round-register]}s)"

  local t1
  declare -A task
  t1=$(now)
  for n in "${vms[@]}"; do task[$n]=$(make_task "$n" multicast); done
  for n in "${vms[@]}"; do start_vm "$n" "$work/disk$n.raw" n "r$round-vm$n-deploy"; done
  for n in "${vms[@]}"; do wait_vm "$n"; done
  phase[r$round-deploy]=$(since "$t1")
  for n in "${vms[@]}"; do
    grep -aq "shoal agent: task ${task[$n]} complete" "$work/r$round-vm$n-deploy.serial.log" ||
      fail "round $round: VM $n's console does not say its task ${task[$n]} completed"
  done
  api GET "/tasks?limit=100" > "$work/tasks.json"
  api GET "/sessions?limit=100" > "$work/sessions.json"
  python3 - "$work/tasks.json" "$work/sessions.json" "${task[1]} ${task[2]} ${task[3]} ${task[4]}" <<'PY' | tee "$work/r$round-tasks.txt" || fail "round $round: tasks and session from the API"
import json, sys
from datetime import datetime
tasks = {t["id"]: t for t in json.load(open(sys.argv[1]))["items"]}
sessions = json.load(open(sys.argv[2]))["items"]
mine = [tasks[int(i)] for i in sys.argv[3].split()]
def ts(v): return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
for t in mine:
    p = t["progress"]
    assert t["state"] == "complete", t
    assert p["bytes_done"] > 0 and p["bytes_done"] == p["bytes_total"] and p["percent"] == 100, p
    took = ts(t["finished_at"]) - ts(t["started_at"])
    print(f"  task {t['id']} host {t['host_id']}: complete, {p['bytes_done']} bytes, "
          f"{p['rate_Bps'] / 1e6:.1f} MB/s, started to finished {took:.0f}s, session {t['session_id']}")
ids = {t["session_id"] for t in mine}
assert len(ids) == 1 and None not in ids, f"not one session: {ids}"
s = [s for s in sessions if s["id"] in ids][0]
assert s["state"] == "complete", s
print(f"  session {s['id']}: {s['state']}")
PY
  ok "round $round: one multicast session deployed the image to the 4 VMs; every task complete (${phase[r$round-deploy]}s)"
  local line="  round $round per VM, task creation to power-off:"
  for n in "${vms[@]}"; do
    line+=" vm$n $(python3 -c "print(f'{${vm_t1[$n]} - $t1:.1f}')")s"
  done
  [ "$round" = 2 ] && line+=" (vm4 at 5% loss)"
  echo "$line" | tee -a "$work/per-vm.txt"
  [ "$round" = 2 ] && ip netns exec "$P-br" nft delete table bridge shoal_loss

  local t2
  t2=$(now)
  for n in "${vms[@]}"; do start_vm "$n" "$work/disk$n.raw" c "r$round-vm$n-disk"; done
  for n in "${vms[@]}"; do
    local deadline=$(( $(date +%s) + 600 ))
    until grep -aq SHOAL-DEPLOYED-UP "$work/r$round-vm$n-disk.serial.log" 2>/dev/null; do
      [ "$(date +%s)" -lt "$deadline" ] || fail "round $round: VM $n did not boot its disk to the marker"
      kill -0 "${vm_pid[$n]}" 2>/dev/null ||
        grep -aq SHOAL-DEPLOYED-UP "$work/r$round-vm$n-disk.serial.log" || fail "round $round: VM $n stopped without the marker"
      sleep 2
    done
  done
  for n in "${vms[@]}"; do wait_vm "$n"; done
  phase[r$round-boot]=$(since "$t2")
  ok "round $round: each VM booted its own disk into the deployed system (SHOAL-DEPLOYED-UP) (${phase[r$round-boot]}s)"
}
for round in ${ROUNDS:-1 2}; do run_round "$round"; done

echo "phase times (s, TCG):"
for k in prepare p1-register p1-capture r1-register r1-deploy r1-boot r2-register r2-deploy r2-boot; do
  [ -n "${phase[$k]:-}" ] && printf "  %-12s %s\n" "$k" "${phase[$k]}"
done
cat "$work/per-vm.txt"
echo "client_e2e: $pass checks passed"
echo PASS
