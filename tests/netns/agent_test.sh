#!/usr/bin/env bash
# `shoal agent` against a real shoald in namespaces, with loop devices as the PC's disks.
# The PC's sysfs is a fake tree (a virtio disk and an NVMe disk backed by loop devices, a
# USB stick) so that disk choice is exercised as on a PC; the agent reads its parameters
# from a command-line file made of the shoal.* words of the boot script shoald serves to
# the PC's MAC, as the client OS reads /proc/cmdline.
#   1. quick registration (shoal.mode=quickreg): the host and its inventory in the API
#   2. a wipe_fast task with no disk rule on a PC with two fixed disks: refused, the task
#      failed with the reason, the console lists both candidates, no byte written
#   3. wipe_normal with shoal.disk=virtio (the task's disk field): the tables and the
#      partitions' ends zeroed, the rest intact, the task complete
#   4. disk_test by serial: complete, the whole disk read
#   5. disk_test on a slow disk (--throttle), cancelled through the API mid-way: the agent
#      stops, says so, and the task stays cancelled
#   6. capture to shoald and unicast deploy from it (HTTP), a too small disk refused
#   7. shoald unreachable: bounded retries, the console message, exit 4
# Usage: agent_test.sh SHOAL SHOALD SOURCE_DIR      (root; exits 77 otherwise)
set -euo pipefail
shoal=$(realpath "$1")
shoald=$(realpath "$2")
source "$3/tools/netlab.sh"
lab_need_root
for t in losetup sfdisk curl python3; do
  command -v $t >/dev/null || { echo "SKIP: $t missing" >&2; exit 77; }
done

prefix=shoal-a$$
work=$(mktemp -d /tmp/shoal-agent.XXXXXX)
lab_up "$prefix" 1
shoald_pid=
loops=()
cleanup() {
  [ -n "${KEEP_WORK:-}" ] && { echo "work kept in $work"; cp -r "$work" /tmp/agent-kept 2>/dev/null; }
  [ -n "$shoald_pid" ] && kill -9 "$shoald_pid" 2>/dev/null || true
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  lab_down "$prefix"
  rm -rf "$work"
}
trap cleanup EXIT
server=http://10.77.0.1:8080
mac=52:54:00:00:0a:01
fail() { echo "FAIL: $*" >&2; echo "--- shoald log (tail)"; tail -20 "$work"/shoald.log >&2 || true; exit 1; }
pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
hcurl() { ip netns exec "$prefix-s" curl "$@"; }
py() { python3 -c "$@"; }

# --- the PC's disks: two 32 MiB loop devices of 0xAA bytes with a GPT of two partitions
mib=1048576
make_disk() {  # make_disk FILE -> loop device
  python3 -c "import sys; open(sys.argv[1],'wb').write(b'\xaa' * (32 << 20))" "$1"
  printf 'label: gpt\nstart=2048, size=20480\nstart=22528, size=36864\n' | sfdisk -q "$1"
  losetup --find --show "$1"
}
vda=$(make_disk "$work/vda.img"); loops+=("$vda")
nvme=$(make_disk "$work/nvme.img"); loops+=("$nvme")
sectors=$((32 * mib / 512))
fake_disk() {  # fake_disk BUS_PATH NAME SECTORS REMOVABLE
  local d="$work/root/sys/devices/$1/block/$2"
  mkdir -p "$d/device" "$d/queue" "$work/root/sys/block"
  echo "$3" > "$d/size"; echo "$4" > "$d/removable"; echo 0 > "$d/ro"; echo 0 > "$d/queue/rotational"
  ln -s "../devices/$1/block/$2" "$work/root/sys/block/$2"
}
fake_disk pci0000:00/0000:00:04.0/virtio1 vda $sectors 0
echo "LAB-VDA-0001" > "$work/root/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/serial"
fake_disk pci0000:00/0000:00:05.0/nvme/nvme0 nvme0n1 $sectors 0
echo "QEMU NVMe Ctrl" > "$work/root/sys/devices/pci0000:00/0000:00:05.0/nvme/nvme0/block/nvme0n1/device/model"
echo "NVME-SERIAL-7" > "$work/root/sys/devices/pci0000:00/0000:00:05.0/nvme/nvme0/block/nvme0n1/device/serial"
fake_disk pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0 sda 60000 1
mkdir -p "$work/root/proc" "$work/dev"
printf 'processor\t: 0\nmodel name\t: Lab CPU 3000\n\nprocessor\t: 1\nmodel name\t: Lab CPU 3000\n' > "$work/root/proc/cpuinfo"
echo "MemTotal:        4030000 kB" > "$work/root/proc/meminfo"
mkdir -p "$work/root/sys/class/dmi/id"
echo "LAB-SERIAL-42" > "$work/root/sys/class/dmi/id/product_serial"
ln -s "$vda" "$work/dev/vda"
ln -s "$nvme" "$work/dev/nvme0n1"
ln -s /dev/null "$work/dev/sda"
ok "a PC with a virtio disk ($vda), an NVMe disk ($nvme) and a USB stick"

# --- shoald
mkdir -p "$work/clientos" "$work/web" "$work/store"
cat > "$work/shoald.json" <<JSON
{
  "store": "sqlite://$work/shoald.db",
  "images": "$work/store",
  "clientos": "$work/clientos",
  "web": "$work/web",
  "admin": {"user": "admin", "password": "lab-admin-password"},
  "boot": {"http": {"port": 8080}, "tftp": {"root": "$work/tftp"}},
  "tasks": {"interface": "eth0", "session_secret_file": "$work/session-secret", "tick_ms": 200}
}
JSON
ip netns exec "$prefix-s" "$shoald" --config "$work/shoald.json" >> "$work/shoald.log" 2>&1 &
shoald_pid=$!
for _ in $(seq 1 100); do
  hcurl -sf -o /dev/null "$server/boot" 2>/dev/null && break
  kill -0 "$shoald_pid" 2>/dev/null || fail "shoald exited at start"
  sleep 0.1
done
token=$(hcurl -sf -X POST "$server/api/v1/login" -d '{"user":"admin","password":"lab-admin-password"}' |
        py 'import json,sys; print(json.load(sys.stdin)["token"])') || fail "login"
api() {  # api METHOD PATH [BODY]
  hcurl -sS -X "$1" -H "Authorization: Bearer $token" ${3:+-d "$3"} "$server/api/v1$2"
}
ok "shoald serves at $server"

# The agent as the client OS runs it: the boot script's kernel line is its /proc/cmdline.
cmdline_from_boot() {  # -> $work/cmdline
  hcurl -sf "$server/boot?mac=$mac" | grep '^kernel ' > "$work/cmdline" || fail "no kernel line in the boot script"
}
agent() {  # agent LOG [extra flags]; returns the agent's exit code
  local log=$1; shift
  set +e
  # Through a pipe, which (like /proc/cmdline) has no size to stat.
  timeout 120 ip netns exec "$prefix-r1" "$shoal" agent --cmdline <(cat "$work/cmdline") --no-power \
    --sys-root "$work/root" --dev-root "$work/dev" --server-wait 10s --state-dir "$work/state" \
    "$@" > "$work/$log" 2>&1
  local rc=$?
  set -e
  return $rc
}
task_field() {  # task_field ID EXPR
  api GET "/tasks/$1" | py "import json,sys; t=json.load(sys.stdin); print($2)"
}

# --- 1. quick registration from the menu (no task)
printf 'kernel http://x/vmlinuz shoal.server=%s shoal.mac=%s shoal.mode=quickreg\n' "$server" "$mac" > "$work/cmdline"
agent reg.log --name lab-pc-1 || { cat "$work/reg.log"; fail "quick registration"; }
grep -q "^shoal agent: registered $mac as lab-pc-1 (host [0-9]*)" "$work/reg.log" || { cat "$work/reg.log"; fail "no registration line"; }
grep -q "^shoal agent: leaving the PC on (--no-power: would reboot)" "$work/reg.log" || { cat "$work/reg.log"; fail "no end line"; }
host=$(api GET "/hosts?limit=10" | py "
import json, sys
for h in json.load(sys.stdin)['items']:
    if h['mac'] == '$mac':
        inv = h['inventory']
        disks = {d['name']: d for d in inv['disks']}
        assert set(disks) == {'nvme0n1', 'sda', 'vda'}, disks
        assert disks['vda']['transport'] == 'virtio' and disks['vda']['serial'] == 'LAB-VDA-0001'
        assert disks['vda']['size_bytes'] == 32 << 20
        assert disks['nvme0n1']['transport'] == 'nvme' and disks['nvme0n1']['model'] == 'QEMU NVMe Ctrl'
        assert disks['sda']['transport'] == 'usb' and disks['sda']['removable']
        assert inv['cpu'] == {'model': 'Lab CPU 3000', 'count': 2}, inv['cpu']
        assert inv['memory_bytes'] == 4030000 * 1024
        assert inv['dmi']['product_serial'] == 'LAB-SERIAL-42'
        assert h['name'] == 'lab-pc-1' and h['pending']
        print(h['id'])
") || fail "the host's record or inventory"
[ -n "$host" ] || fail "the host is not registered"
ok "quick registration: host $host, pending, with its disks, CPU, memory and DMI serial"

new_task() {  # new_task JSON -> id
  api POST /tasks "$1" | py 'import json,sys; d=json.load(sys.stdin); print(d["id"]) if "id" in d else sys.exit(str(d))'
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- 2. two fixed disks and no rule: refused, nothing written
before_vda=$(sha "$work/vda.img"); before_nvme=$(sha "$work/nvme.img")
t=$(new_task "{\"kind\":\"wipe_fast\",\"host_id\":$host,\"shutdown\":\"poweroff\"}") || fail "task"
cmdline_from_boot
grep -q "shoal.task=$t " "$work/cmdline" && grep -q "shoal.kind=wipe_fast" "$work/cmdline" || fail "the boot script's task args: $(cat "$work/cmdline")"
if agent refuse.log; then cat "$work/refuse.log"; fail "the agent guessed a disk"; fi
grep -q "^shoal agent: disk choice: .*disk rule 'auto': 2 fixed disks; refusing to guess; candidates: .*/nvme0n1 (nvme, 33.6 MB, QEMU NVMe Ctrl, NVME-SERIAL-7).*/sda (usb, 30.7 MB, no model, no serial) removable.*/vda (virtio, 33.6 MB, no model, LAB-VDA-0001)" "$work/refuse.log" ||
  { cat "$work/refuse.log"; fail "no refusal listing the candidates"; }
grep -q "^shoal agent: leaving the PC on (--no-power: would power off)" "$work/refuse.log" || { cat "$work/refuse.log"; fail "end line"; }
[ "$(task_field "$t" "t['state']")" = failed ] || fail "task $t is not failed"
task_field "$t" "t['progress']['message']" | grep -q "refusing to guess" || fail "task $t's message"
[ "$(sha "$work/vda.img")" = "$before_vda" ] && [ "$(sha "$work/nvme.img")" = "$before_nvme" ] || fail "a disk changed"
ok "two fixed disks, no rule: refused with both candidates listed, task failed, no byte written"

# --- 3. wipe_normal on the virtio disk (the task's disk rule)
t=$(new_task "{\"kind\":\"wipe_normal\",\"host_id\":$host,\"disk\":\"virtio\"}") || fail "task"
cmdline_from_boot
grep -q "shoal.disk=virtio" "$work/cmdline" || fail "no shoal.disk= in the boot script: $(cat "$work/cmdline")"
agent wipe.log || { cat "$work/wipe.log"; fail "wipe_normal"; }
grep -q "^shoal agent: task $t wipe_normal started on $work/dev/vda" "$work/wipe.log" || { cat "$work/wipe.log"; fail "start line"; }
grep -q "^shoal agent: task $t complete: .*2 partitions' heads and tails" "$work/wipe.log" || { cat "$work/wipe.log"; fail "complete line"; }
grep -q "^shoal agent: leaving the PC on (--no-power: would reboot)" "$work/wipe.log" || fail "end line"
py "
import sys
b = open('$work/vda.img', 'rb').read()
M = 1 << 20
def all_(a, z, v): return b[a:z] == bytes([v]) * (z - a)
p1, p1e = 2048 * 512, (2048 + 20480) * 512
p2, p2e = 22528 * 512, (22528 + 36864) * 512
assert all_(0, 2 * M, 0) and all_(len(b) - 2 * M, len(b), 0), 'disk ends'
assert all_(p1, p1 + M, 0) and all_(p1e - M, p1e, 0), 'partition 1 ends'
assert all_(p1 + M, p1e - M, 0xaa), 'partition 1 middle'
assert all_(p2, p2 + M, 0) and all_(p2e - M, p2e, 0), 'partition 2 ends'
assert all_(p2 + M, p2e - M, 0xaa), 'partition 2 middle'
" || fail "the virtio disk's bytes after wipe_normal"
[ "$(sha "$work/nvme.img")" = "$before_nvme" ] || fail "the NVMe disk changed"
[ "$(task_field "$t" "t['state']")" = complete ] || fail "task $t is not complete"
[ "$(task_field "$t" "t['disk']")" = virtio ] || fail "task $t's disk field"
ok "wipe_normal by rule virtio: tables and partition ends zeroed, the rest and the other disk intact, complete"

# --- 4. disk_test by serial
t=$(new_task "{\"kind\":\"disk_test\",\"host_id\":$host,\"disk\":\"serial:NVME-SERIAL-7\"}") || fail "task"
cmdline_from_boot
agent test.log || { cat "$work/test.log"; fail "disk_test"; }
grep -q "^shoal agent: task $t complete: $work/dev/nvme0n1: all 33.6 MB read without error" "$work/test.log" || { cat "$work/test.log"; fail "complete line"; }
[ "$(task_field "$t" "t['state']")" = complete ] || fail "task $t"
[ "$(task_field "$t" "t['progress']['bytes_done']")" = $((32 * mib)) ] || fail "task $t's bytes"
ok "disk_test by serial: the whole NVMe disk read, task complete with its bytes"

# --- 5. a slow disk test (4 MiB/s) cancelled through the API mid-way
t=$(new_task "{\"kind\":\"disk_test\",\"host_id\":$host,\"disk\":\"nvme\"}") || fail "task"
cmdline_from_boot
agent cancel.log --throttle 4M &
apid=$!
for _ in $(seq 1 100); do
  [ "$(task_field "$t" "t['state']")" = in_progress ] && break
  sleep 0.1
done
sleep 2
api POST "/tasks/$t/cancel" > /dev/null
set +e; wait $apid; rc=$?; set -e
[ $rc = 1 ] || { cat "$work/cancel.log"; fail "the cancelled agent exited $rc"; }
grep -q "^shoal agent: task $t was cancelled on the server" "$work/cancel.log" || { cat "$work/cancel.log"; fail "no cancel line"; }
grep -q "^shoal agent: leaving the PC on$" "$work/cancel.log" || fail "end line after cancel"
grep -q "complete" "$work/cancel.log" && { cat "$work/cancel.log"; fail "a cancelled task said complete"; }
[ "$(task_field "$t" "t['state']")" = cancelled ] || fail "task $t is not cancelled"
done_bytes=$(task_field "$t" "t['progress']['bytes_done']")
[ "$done_bytes" -lt $((32 * mib)) ] || fail "the cancelled test read the whole disk"
ok "a disk test on a slow disk, cancelled through the API after $done_bytes bytes: the agent stopped and said so"

# --- 6. capture and unicast deploy over HTTP (the "remote" part's /store routes)
probe=$(hcurl -s -o /dev/null -w '%{http_code}' "$server/store/images/none/manifest" || true)
if [ "$probe" = 404 ] && hcurl -s "$server/store/images/none/manifest" | grep -q "nothing at"; then
  probe=none
fi
if [ "$probe" != none ] && command -v mkfs.ext4 >/dev/null && command -v e2fsck >/dev/null; then
  # The master: a real ext4 with files, on a fresh disk behind the virtio name.
  ref=$work/ref
  mkdir -p "$ref/deep"
  cp -r /usr/share/doc/bash "$ref/"
  head -c 6000000 /dev/urandom > "$ref/random.bin"
  seq 1 100000 > "$ref/deep/numbers.txt"
  truncate -s 32M "$work/master.img"
  echo 'start=2048, type=83' | sfdisk -q "$work/master.img"
  mkfs.ext4 -q -F -d "$ref" -E offset=1048576 "$work/master.img" 28M
  master=$(losetup --find --show "$work/master.img"); loops+=("$master")
  rm "$work/dev/vda"; ln -s "$master" "$work/dev/vda"
  image=$(api POST /images '{"name":"agent-lab","kind":"multi_partition_single_disk"}' |
          py 'import json,sys; print(json.load(sys.stdin)["id"])') || fail "image record"
  t=$(new_task "{\"kind\":\"capture\",\"host_id\":$host,\"image_id\":$image,\"disk\":\"virtio\"}") || fail "task"
  cmdline_from_boot
  grep -q "shoal.image=agent-lab" "$work/cmdline" || fail "no shoal.image= in the boot script"
  agent capture.log || { cat "$work/capture.log"; fail "capture"; }
  grep -q "^shoal agent: task $t complete: image agent-lab captured from $work/dev/vda" "$work/capture.log" || { cat "$work/capture.log"; fail "capture line"; }
  [ "$(task_field "$t" "t['state']")" = complete ] || fail "capture task $t"
  api GET "/images/$image" | py 'import json,sys; i=json.load(sys.stdin); assert i["size_bytes"] > 6000000, i' || fail "the image's record after capture"
  ok "capture task: the master's disk captured to shoald over HTTP and published"

  # Deploy it onto the NVMe disk (the throttled one is gone: the plain loop again).
  rm -f "$work/dev/nvme0n1"; ln -s "$nvme" "$work/dev/nvme0n1"
  t=$(new_task "{\"kind\":\"deploy\",\"host_id\":$host,\"image_id\":$image,\"disk\":\"nvme\"}") || fail "task"
  cmdline_from_boot
  agent deploy.log || { cat "$work/deploy.log"; fail "deploy"; }
  grep -q "^shoal agent: task $t complete: image agent-lab written to $work/dev/nvme0n1 and verified" "$work/deploy.log" || { cat "$work/deploy.log"; fail "deploy line"; }
  [ "$(task_field "$t" "t['state']")" = complete ] || fail "deploy task $t"
  e2fsck -fn "$work/nvme.img?offset=1048576" > "$work/fsck.log" 2>&1 || { cat "$work/fsck.log"; fail "e2fsck of the deployed disk"; }
  mkdir -p "$work/got"
  debugfs -R "rdump / $work/got" "$work/nvme.img?offset=1048576" > /dev/null 2>&1
  diff -r -x lost+found "$ref" "$work/got" > "$work/diff.log" 2>&1 || { head "$work/diff.log"; fail "the deployed files differ"; }
  cmp "$ref/random.bin" "$work/got/random.bin" || fail "random.bin differs"
  cmp "$ref/deep/numbers.txt" "$work/got/deep/numbers.txt" || fail "numbers.txt differs"
  ok "deploy task: the image written to the NVMe disk over HTTP; e2fsck -fn clean, files identical"

  # A disk smaller than the image needs: refused before a byte is written.
  truncate -s 8M "$work/small.img"
  python3 -c "import sys; open(sys.argv[1],'r+b').write(b'\xbb' * (8 << 20))" "$work/small.img"
  small=$(losetup --find --show "$work/small.img"); loops+=("$small")
  before_small=$(sha "$work/small.img")
  t=$(new_task "{\"kind\":\"deploy\",\"host_id\":$host,\"image_id\":$image}") || fail "task"
  cmdline_from_boot
  if agent small.log --target "$small"; then cat "$work/small.log"; fail "a deploy to a too small disk succeeded"; fi
  grep -q "^shoal agent: task $t failed: " "$work/small.log" || { cat "$work/small.log"; fail "no failure line"; }
  [ "$(task_field "$t" "t['state']")" = failed ] || fail "task $t is not failed"
  [ "$(sha "$work/small.img")" = "$before_small" ] || fail "the small disk was written"
  ok "deploy to a disk smaller than the image: task failed ($(task_field "$t" "t['progress']['message']" | cut -c1-80)...), nothing written"
else
  echo "# capture/deploy skipped: shoald has no /store/images routes in this build"
fi

# --- 7. shoald unreachable
printf 'kernel x shoal.server=http://10.77.0.99:8080 shoal.mac=%s shoal.mode=quickreg\n' "$mac" > "$work/cmdline"
start=$(date +%s)
set +e
timeout 60 ip netns exec "$prefix-r1" "$shoal" agent --cmdline "$work/cmdline" --no-power \
  --sys-root "$work/root" --server-wait 4s --state-dir "$work/state" > "$work/down.log" 2>&1
rc=$?
set -e
secs=$(( $(date +%s) - start ))
[ $rc = 4 ] || { cat "$work/down.log"; fail "exit $rc, not 4"; }
grep -q "^shoal agent: cannot reach shoald at http://10.77.0.99:8080 after [0-9]* tries over 4 s: .*then reboot this PC" "$work/down.log" ||
  { cat "$work/down.log"; fail "no clear message"; }
[ "$secs" -lt 40 ] || fail "gave up after ${secs}s, not within its bound"
ok "shoald unreachable: retried for its bound, then a clear console message and exit 4 (${secs}s)"
# The next run that reaches shoald puts the note on the host's record.
printf 'kernel x shoal.server=%s shoal.mac=%s shoal.mode=inventory\n' "$server" "$mac" > "$work/cmdline"
agent again.log || { cat "$work/again.log"; fail "registration after the outage"; }
api GET "/hosts/$host" | py "
import json, sys
h = json.load(sys.stdin)
assert 'was unreachable after' in h['inventory']['agent']['note'], h['inventory']
" || fail "the outage is not on the host's record"
[ ! -e "$work/state/unreachable" ] || fail "the note was kept after it was delivered"
ok "the next run that reached shoald put the outage on the host's record"

echo "agent: $pass checks passed"
