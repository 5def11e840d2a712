#!/usr/bin/env bash
# Multicast deploy of a store image between network namespaces: a real MBR disk image with
# ext4 (p1) and NTFS (p2, the last partition) made with sfdisk/mkfs and filled with real
# files, captured with `shoal image capture` (resizable: both filesystems shrunk first),
# sent with `shoal send --image` to receivers writing disk image files:
#   r1 a new file of the captured size (must equal `shoal image restore`'s result byte for byte),
#   r2 a larger file (the last partition and its NTFS grow to the end),
#   r3 at 5% packet loss (nftables),
#   r4 a file too small for the image (a clear error, the file untouched; the others finish).
# Every written disk passes e2fsck / ntfsfix and every file matches the source. Then: a
# receiver killed mid-stream and restarted with --resume completes; a damaged chunk in the
# store stops the sender before it sends anything.
# Usage: imgcast_test.sh SHOAL_BINARY SOURCE_DIR
set -euo pipefail
shoal=$(realpath "$1")
source "$2/tools/netlab.sh"
lab_need_root
for t in nft mkfs.ext4 mkfs.ntfs e2fsck ntfsfix ntfs-3g sfdisk partx losetup; do
  command -v $t >/dev/null || { echo "SKIP: $t missing" >&2; exit 77; }
done
losetup -f >/dev/null 2>&1 || { echo "SKIP: no loop devices" >&2; exit 77; }

receivers=4
prefix=shoal-ic$$
work=$(mktemp -d /tmp/shoal-imgcast.XXXXXX)
loops=()
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  lab_down "$prefix"
  rm -rf "$work"
}
LAB_NO_TRAP=1
trap cleanup EXIT
lab_up "$prefix" "$receivers"
head -c 32 /dev/urandom > "$work/key"
S=$work/store
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

part_loop() {  # part_loop FILE N [ro] -> a loop device over partition N
  local f=$1 n=$2 ro=${3:-} start size l
  read -r start size < <(partx -g -o START,SECTORS -n "$n" "$f")
  l=$(losetup -f --show ${ro:+--read-only} -o $((start * 512)) --sizelimit $((size * 512)) "$f")
  loops+=("$l")
  echo "$l"
}

# The source: real files (documentation, a random file, a deep tree, a name with a space).
ref=$work/ref
mkdir -p "$ref/deep/er" "$ref/with space"
cp -r /usr/share/doc/bash /usr/share/doc/e2fsprogs "$ref/"
head -c 6000000 /dev/urandom > "$ref/random.bin"
seq 1 300000 > "$ref/deep/er/numbers.txt"
echo "room 204" > "$ref/with space/motd.txt"
disk=$work/source.img
truncate -s 96M "$disk"
sfdisk -q "$disk" <<'T'
label: dos
start=2048, size=61440, type=83, bootable
start=63488, type=7
T
l=$(part_loop "$disk" 1); mkfs.ext4 -q -L lab "$l"
mkdir -p "$work/mnt"; mount "$l" "$work/mnt"; cp -a "$ref/." "$work/mnt/"; umount "$work/mnt"; losetup -d "$l"
l=$(part_loop "$disk" 2); mkfs.ntfs -Q -F -q -p 63488 -H 16 -S 63 "$l" >/dev/null
ntfs-3g "$l" "$work/mnt"; cp -r "$ref/." "$work/mnt/"; umount "$work/mnt"; losetup -d "$l"
"$shoal" image capture --store "$S" --disk "$disk" --name lab --progress none > /dev/null 2> "$work/capture.log" \
  || { cat "$work/capture.log"; echo "FAIL capture"; exit 1; }
# The same disk as a multipart image (no shrink, no grow): a restore of it is byte-exact,
# so a receiver's result can be compared with `shoal image restore`'s byte for byte.
"$shoal" image capture --store "$S" --disk "$disk" --name lab-mp --type multipart --progress none \
  > /dev/null 2>> "$work/capture.log" || { cat "$work/capture.log"; echo "FAIL capture multipart"; exit 1; }
"$shoal" image restore --store "$S" --name lab-mp --disk "$work/restored.img" --progress none > /dev/null 2>&1 \
  || { echo "FAIL local restore"; exit 1; }

# check FILE WHAT: table present, e2fsck and ntfsfix pass, every file matches the source.
check() {
  local f=$1 what=$2 l m=$work/chk out
  mkdir -p "$m"
  sfdisk -d "$f" > /dev/null 2>&1 || { fail "$what: no partition table"; return; }
  l=$(part_loop "$f" 1 ro)
  e2fsck -fn "$l" > "$work/fsck.out" 2>&1 || { cat "$work/fsck.out"; fail "$what: e2fsck"; losetup -d "$l"; return; }
  mount -o ro "$l" "$m"; mounts+=("$m")
  diff -r "$ref" "$m" -x lost+found > /dev/null || fail "$what: ext4 files differ"
  umount "$m"; losetup -d "$l"
  l=$(part_loop "$f" 2 ro)
  out=$(ntfsfix -n "$l" 2>&1) || { echo "$out"; fail "$what: ntfsfix"; losetup -d "$l"; return; }
  ntfs-3g -o ro "$l" "$m"
  diff -r "$ref" "$m" > /dev/null || fail "$what: ntfs files differ"
  umount "$m"; losetup -d "$l"
}

recv() {  # recv I TARGET [ARGS...]: receiver I in the background, pid in $!
  local i=$1 target=$2; shift 2
  timeout 120 ip netns exec "$prefix-r$i" "$shoal" recv "$target" -i eth0 --key-file "$work/key" \
    --id $((100 + i)) --json "$@" > "$work/recv$i.json" 2> "$work/recv$i.log" &
}

# --- 1. four receivers ------------------------------------------------------------------
truncate -s 160M "$work/disk2"                                  # larger than the source
head -c $((8 << 20)) /dev/zero | tr '\0' '\252' > "$work/disk4"  # too small: 8 MiB of 0xAA
small_sum=$(sha256sum < "$work/disk4")
lab_loss "$prefix-r3" 50
pids=()
recv 1 "$work/disk1"; pids+=($!)
recv 2 "$work/disk2" --image lab; pids+=($!)
recv 3 "$work/disk3"; pids+=($!)
recv 4 "$work/disk4"; small=$!
timeout 120 ip netns exec "$prefix-s" "$shoal" send --image lab --store "$S" -i eth0 \
  --key-file "$work/key" --receivers 4 --wait 30s --rate 400M --idle-timeout 3s --json \
  > "$work/send.json" 2> "$work/send.log" || true
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc -eq 0 ] || { fail "a receiver exited non-zero"; tail -3 "$work"/recv[123].log; }
if wait $small; then fail "the too-small target was accepted"; fi
grep -q "needs at least" "$work/recv4.log" || { fail "no clear error for the small target"; cat "$work/recv4.log"; }
[ "$(sha256sum < "$work/disk4")" = "$small_sum" ] || fail "the too-small target was written to"
python3 - "$work" <<'PY' || fail "receiver reports"
import json, sys
w = sys.argv[1]
send = json.load(open(f"{w}/send.json"))
assert send["image"] == "lab", send
ids = {r["id"]: r for r in send["receivers"]}
for i in (1, 2, 3):
    r = json.load(open(f"{w}/recv{i}.json"))
    assert r["complete"] and r["image"] == "lab", r
    assert ids[f"{100 + i:08x}"]["complete"], ids          # --id reaches the sender's report
assert json.load(open(f"{w}/recv3.json"))["lost_packets"] > 0  # the loss was real
PY
for i in 1 2 3; do check "$work/disk$i" "r$i"; done
# r2: the last partition reaches the end of the 160 MiB disk and its NTFS fills it.
read -r start sectors < <(partx -g -o START,SECTORS -n 2 "$work/disk2")
[ $(( (start + sectors) * 512 )) -gt $(( 158 << 20 )) ] || fail "r2: last partition not grown"
l=$(part_loop "$work/disk2" 2 ro)
vol=$(ntfsresize --info --force "$l" 2>/dev/null | awk '/Current volume size/ {print $4}')
losetup -d "$l"
[ "${vol:-0}" -gt $(( sectors * 512 - (2 << 20) )) ] || fail "r2: NTFS not grown ($vol bytes)"
secs=$(python3 -c "import json;print(round(json.load(open('$work/send.json'))['seconds'],2))")
[ $failures -eq 0 ] && echo "ok   resizable image to 3 receivers (one larger, one at 5% loss) in ${secs}s: tables, fsck, files, growth; a too-small target refused untouched"
ip netns exec "$prefix-r3" nft delete table inet shoal_loss

# --- 2. multipart image; a receiver killed mid-stream, restarted with --resume ---------------
before=$failures
rm -f "$work/disk1" "$work/disk2"
pids=()
recv 1 "$work/disk1" --timeout 10s; pids+=($!)
recv 2 "$work/disk2" --timeout 10s; pids+=($!)
timeout 120 ip netns exec "$prefix-s" "$shoal" send --image lab-mp --store "$S" -i eth0 \
  --key-file "$work/key" --receivers 2 --wait 30s --rate 12M --idle-timeout 3s \
  > /dev/null 2> "$work/send.log" &
sender=$!
sleep 3
ip netns pids "$prefix-r2" | xargs -r kill -9
wait "${pids[1]}" 2>/dev/null || true
if sfdisk -d "$work/disk2" > /dev/null 2>&1; then fail "resume: a killed receiver left a partition table"; fi
recv 2 "$work/disk2" --timeout 10s --resume; pids[1]=$!
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
wait $sender || true
[ $rc -eq 0 ] || { fail "resume: a receiver failed"; tail -3 "$work/recv2.log"; }
resumed=$(grep -o "resumed: [0-9]* chunks ([^)]*)" "$work/recv2.log" || true)
[ -n "$resumed" ] || fail "resume: nothing kept from the first run"
for i in 1 2; do
  check "$work/disk$i" "multipart r$i"
  cmp -s "$work/disk$i" "$work/restored.img" || fail "multipart r$i differs from shoal image restore's result"
done
[ $failures -eq $before ] && echo "ok   multipart image: both receivers = shoal image restore byte for byte; one killed mid-stream and restarted with --resume ($resumed), fsck, files"

# --- 3. the sender interrupted (a cancelled task): receivers are told at once --------------
before=$failures
rm -f "$work/disk1" "$work/disk2"
pids=()
recv 1 "$work/disk1" --timeout 30s; pids+=($!)
recv 2 "$work/disk2" --timeout 30s; pids+=($!)
timeout 120 ip netns exec "$prefix-s" "$shoal" send --image lab --store "$S" -i eth0 \
  --key-file "$work/key" --receivers 2 --wait 30s --rate 8M > /dev/null 2> "$work/send.log" &
sender=$!
sleep 3
kill -TERM $sender   # timeout(1) passes it on to shoal send
stopped=$(date +%s)
for p in "${pids[@]}"; do if wait "$p"; then fail "interrupted: a receiver exited 0"; fi; done
wait $sender 2>/dev/null || true
elapsed=$(( $(date +%s) - stopped ))
[ $elapsed -le 5 ] || fail "interrupted: receivers took ${elapsed}s to stop (their timeout is 30s)"
grep -q "interrupted: the session was ended" "$work/send.log" || fail "interrupted: the sender did not say so"
for i in 1 2; do
  grep -q "NOT a complete copy" "$work/recv$i.log" || { fail "interrupted: r$i gave no clear error"; tail -2 "$work/recv$i.log"; }
  if python3 -c "import json,sys; sys.exit(0 if json.load(open('$work/recv$i.json'))['complete'] else 1)"; then
    fail "interrupted: r$i reported complete"
  fi
  if sfdisk -d "$work/disk$i" > /dev/null 2>&1; then fail "interrupted: r$i's disk shows a partition table"; fi
done
[ $failures -eq $before ] && echo "ok   sender interrupted: both receivers stopped within ${elapsed}s with a clear error, no table on their disks"

# --- 4. a damaged chunk in the store: the sender refuses before it sends -------------------
before=$failures
cp -a "$S" "$work/damaged"
# One bit flipped in the middle of every chunk file (the store also holds lab-mp's).
python3 - "$work/damaged/chunks" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        with open(os.path.join(root, name), "r+b") as f:
            f.seek(len(f.read()) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x10]))
PY
start=$(date +%s)
if timeout 60 ip netns exec "$prefix-s" "$shoal" send --image lab --store "$work/damaged" -i eth0 \
     --key-file "$work/key" --receivers 4 --wait 30s 2> "$work/send-damaged.log"; then
  fail "damaged store: the sender exited 0"
fi
elapsed=$(( $(date +%s) - start ))
grep -q "SHA-256 does not match" "$work/send-damaged.log" || { fail "damaged store: no clear error"; cat "$work/send-damaged.log"; }
victim=$(grep -o "$work/damaged/chunks/[0-9a-f/]*" "$work/send-damaged.log" | head -1)
[ -f "$victim" ] || fail "damaged store: the chunk is not named"
[ $elapsed -lt 20 ] || fail "damaged store: the sender waited for receivers (${elapsed}s)"
[ $failures -eq $before ] && echo "ok   damaged chunk in the store: the sender stops before sending, naming $(basename "$victim" | cut -c1-12)…"
exit $((failures > 0))
