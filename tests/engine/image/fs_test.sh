#!/usr/bin/env bash
# shoal image on real filesystems: disks made in files with sfdisk, filesystems made with
# mkfs.ext4, mkfs.ntfs and mkfs.vfat, filled with real files; captured, restored to the
# same, a smaller and a larger size; every result passes fsck and every file matches.
# Also the bad inputs of the Images issue, resume, export, rm and the progress lines.
# Needs root (loop devices, mounts, FUSE for NTFS): exits 77 (skip) without it.
# Usage: fs_test.sh PATH/TO/shoal
set -euo pipefail
shoal=$(realpath "$1")
if [ "$(id -u)" -ne 0 ] || ! losetup -f >/dev/null 2>&1; then
  echo "skip: needs root and loop devices"; exit 77
fi
for t in mkfs.ext4 mkfs.ntfs mkfs.vfat e2fsck ntfsfix fsck.vfat ntfs-3g mcopy sfdisk partx; do
  command -v $t >/dev/null || { echo "skip: $t missing"; exit 77; }
done

W=$(mktemp -d /tmp/shoal-fs-test.XXXXXX)
loops=()
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
S=$W/store
pass=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }

# Reference content: real files, a random file, names with spaces, a deep tree.
ref=$W/ref
mkdir -p "$ref/deep/er/still" "$ref/with space"
cp -r /usr/share/doc/bash /usr/share/doc/e2fsprogs "$ref/"
head -c 3000000 /dev/urandom > "$ref/random.bin"
seq 1 200000 > "$ref/deep/er/still/numbers.txt"
echo hello > "$ref/with space/file one.txt"

# part_loop FILE N [ro]: a loop device over partition N of a disk file.
part_loop() {
  local f=$1 n=$2 ro=${3:-} start size l
  read -r start size < <(partx -g -o START,SECTORS -n "$n" "$f")
  l=$(losetup -f --show ${ro:+--read-only} -o $((start * 512)) --sizelimit $((size * 512)) "$f")
  loops+=("$l")
  echo "$l"
}
unloop() { losetup -d "$1"; }

fill() {  # fill FILE N FS
  local f=$1 n=$2 fs=$3 l m=$W/mnt
  mkdir -p "$m"
  l=$(part_loop "$f" "$n")
  case $fs in
    ext4) mount "$l" "$m"; mounts+=("$m"); cp -a "$ref/." "$m/"; umount "$m" ;;
    ntfs) ntfs-3g "$l" "$m"; mounts+=("$m"); cp -r "$ref/." "$m/"; umount "$m" ;;
    vfat) mcopy -s -i "$l" "$ref/"* ::/ ;;
  esac
  unloop "$l"
}

# check FILE N FS WHAT: fsck passes and every file matches the reference.
check() {
  local f=$1 n=$2 fs=$3 what=$4 l m=$W/chk out
  mkdir -p "$m"
  l=$(part_loop "$f" "$n" ro)
  case $fs in
    ext4)
      e2fsck -fn "$l" >"$W/fsck.out" 2>&1 || { cat "$W/fsck.out"; fail "$what: e2fsck"; }
      mount -o ro "$l" "$m" 2>"$W/mount.err" || {
        cat "$W/mount.err"; dumpe2fs -h "$l" 2>&1 | grep -iE 'features|state|needs'
        dmesg 2>/dev/null | tail -5; losetup -a; fail "$what: mount"; }
      mounts+=("$m")
      diff -r "$ref" "$m" -x lost+found ${extra:+-x "$extra"} >/dev/null || fail "$what: ext4 content differs"
      if [ -n "${extra:-}" ]; then cmp "$W/$extra" "$m/$extra" || fail "$what: $extra differs"; fi
      umount "$m" ;;
    ntfs)
      out=$(ntfsfix -n "$l" 2>&1) || { echo "$out"; fail "$what: ntfsfix"; }
      if echo "$out" | grep -qE 'BAD|FAILED|corrupt'; then echo "$out"; fail "$what: ntfsfix -n"; fi
      ntfs-3g -o ro "$l" "$m"; mounts+=("$m")
      diff -r "$ref" "$m" >/dev/null || fail "$what: ntfs content differs"
      umount "$m" ;;
    vfat)
      fsck.vfat -n "$l" >"$W/fsck.out" 2>&1 || { cat "$W/fsck.out"; fail "$what: fsck.vfat"; }
      rm -rf "$m"; mkdir -p "$m"
      mcopy -s -i "$l" ::/ "$m/" 2>/dev/null
      diff -r "$ref" "$m" >/dev/null || fail "$what: fat content differs"
      ;;
  esac
  unloop "$l"
}

# uuids FILE: the table's identity (label id, partition GUIDs/types), for comparisons.
table_ids() { sfdisk -d "$1" | grep -E '^label-id|uuid=|type=' | sed -E 's/start=[^,]*, size=[^,]*, //; s/^[^:]*://'; }

# --- 1. GPT: FAT32 EFI partition + ext4, resizable --------------------------------------
d1=$W/gpt.img
truncate -s 128M "$d1"
sfdisk -q "$d1" <<'T'
label: gpt
start=2048, size=81920, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"
start=83968, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
T
l=$(part_loop "$d1" 1); mkfs.vfat -F 32 -n EFI "$l" >/dev/null; unloop "$l"
l=$(part_loop "$d1" 2); mkfs.ext4 -q -L root "$l"; unloop "$l"
fill "$d1" 1 vfat
fill "$d1" 2 ext4
"$shoal" image capture --store "$S" --disk "$d1" --name gpt-lab --progress none >/dev/null 2>&1 \
  || fail "capture gpt"
check "$d1" 1 vfat "source after capture"
check "$d1" 2 ext4 "source after capture (shrunk and grown back)"
ok "GPT FAT32+ext4 captured; the source is intact"
"$shoal" image info gpt-lab --store "$S" --json > "$W/info.json"
python3 - "$W/info.json" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
r = {x["partition"]: x for x in j["disks"][0]["regions"]}
assert r[1]["fs"] == "fat32", r[1]
assert r[2]["fs"] == "ext4", r[2]
assert r[2]["minimum_size_bytes"] < r[2]["size_bytes"] // 2, r[2]   # shrunk for resizing
assert r[2]["used_bytes"] < 32 << 20, r[2]                           # only used blocks
assert j["disks"][0]["table"] == "gpt"
P
ok "manifest: fs types, minimum sizes, used bytes"
for size in 128 72 200; do
  t=$W/gpt-$size.img
  truncate -s ${size}M "$t"
  "$shoal" image restore --store "$S" --name gpt-lab --disk "$t" --progress none >/dev/null 2>&1 \
    || fail "restore gpt to ${size}M"
  check "$t" 1 vfat "gpt ${size}M"
  check "$t" 2 ext4 "gpt ${size}M"
  [ "$(table_ids "$t")" = "$(table_ids "$d1")" ] || fail "gpt ${size}M: table ids differ"
  read -r start sectors < <(partx -g -o START,SECTORS -n 2 "$t")
  end=$(( (start + sectors) * 512 ))
  [ $end -gt $(( (size - 2) << 20 )) ] || fail "gpt ${size}M: last partition not grown to the end ($end)"
  l=$(part_loop "$t" 2 ro); blocks=$(dumpe2fs -h "$l" 2>/dev/null | awk -F: '/^Block count/ {print $2}'); \
    bs=$(dumpe2fs -h "$l" 2>/dev/null | awk -F: '/^Block size/ {print $2}'); unloop "$l"
  [ $((blocks * bs)) -ge $(( sectors * 512 - (1 << 20) )) ] || fail "gpt ${size}M: ext4 not grown to its partition"
  ok "GPT restored to ${size} MiB: fsck, files, ids, partition and filesystem fill the disk"
done

# --- 2. MBR: ext4 + NTFS, resizable -----------------------------------------------------
d2=$W/mbr.img
truncate -s 96M "$d2"
sfdisk -q "$d2" <<'T'
label: dos
start=2048, size=49152, type=83, bootable
start=51200, type=7
T
l=$(part_loop "$d2" 1); mkfs.ext4 -q "$l"; unloop "$l"
l=$(part_loop "$d2" 2); mkfs.ntfs -Q -F -q -p 51200 -H 16 -S 63 "$l"; unloop "$l"
fill "$d2" 1 ext4
fill "$d2" 2 ntfs
"$shoal" image capture --store "$S" --disk "$d2" --name mbr-lab --progress none >/dev/null 2>&1 \
  || fail "capture mbr"
check "$d2" 1 ext4 "mbr source after capture"
check "$d2" 2 ntfs "mbr source after capture (shrunk and grown back)"
ok "MBR ext4+NTFS captured; the source is intact"
for size in 96 48 160; do
  t=$W/mbr-$size.img
  truncate -s ${size}M "$t"
  "$shoal" image restore --store "$S" --name mbr-lab --disk "$t" --progress none >/dev/null 2>&1 \
    || fail "restore mbr to ${size}M"
  check "$t" 1 ext4 "mbr ${size}M"
  check "$t" 2 ntfs "mbr ${size}M"
  [ "$(table_ids "$t")" = "$(table_ids "$d2")" ] || fail "mbr ${size}M: table ids differ"
  sfdisk -d "$t" | grep -q 'bootable' || fail "mbr ${size}M: boot flag lost"
  ok "MBR restored to ${size} MiB: fsck, files, ids, boot flag"
done

# --- 2b. MBR with logical partitions in an extended one ----------------------------------
d3=$W/logical.img
truncate -s 96M "$d3"
sfdisk -q "$d3" <<'T'
label: dos
start=2048, size=20480, type=83
start=22528, type=5
start=24576, size=30720, type=83
start=57344, type=83
T
for n in 1 5 6; do l=$(part_loop "$d3" $n); mkfs.ext4 -q "$l"; unloop "$l"; fill "$d3" $n ext4; done
"$shoal" image capture --store "$S" --disk "$d3" --name logical --progress none >/dev/null 2>&1 || fail "capture logical"
for size in 96 64 128; do
  t=$W/logical-$size.img
  truncate -s ${size}M "$t"
  "$shoal" image restore --store "$S" --name logical --disk "$t" --progress none >/dev/null 2>&1 \
    || fail "restore logical to ${size}M"
  for n in 1 5 6; do check "$t" $n ext4 "logical ${size}M p$n"; done
  [ "$(table_ids "$t" | sed 's/ *$//')" = "$(table_ids "$d3" | sed 's/ *$//')" ] || fail "logical ${size}M: table ids differ"
  ok "MBR with logical partitions restored to ${size} MiB: extended and last logical resized, fsck, files"
done

# --- 3. loop devices as source and target -----------------------------------------------
src_loop=$(losetup -f --show "$d2"); loops+=("$src_loop")
"$shoal" image capture --store "$S" --disk "$src_loop" --name mbr-loop --type multipart --progress none \
  >/dev/null 2>&1 || fail "capture from a loop device"
losetup -d "$src_loop"
t=$W/loop-target.img; truncate -s 96M "$t"
dst_loop=$(losetup -f --show "$t"); loops+=("$dst_loop")
"$shoal" image restore --store "$S" --name mbr-loop --disk "$dst_loop" --progress none >/dev/null 2>&1 \
  || fail "restore to a loop device"
losetup -d "$dst_loop"
check "$t" 1 ext4 "loop device"
check "$t" 2 ntfs "loop device"
ok "multipart image from a loop device onto a loop device"

# --- 4. raw and one partition -----------------------------------------------------------
r=$W/raw.img
head -c $((12 << 20)) /dev/urandom > "$r"
"$shoal" image capture --store "$S" --disk "$r" --name raw --type raw --progress none >/dev/null 2>&1 || fail "raw capture"
"$shoal" image export --store "$S" --name raw --output "$W/raw-out.img" --progress none >/dev/null 2>&1 || fail "raw export"
cmp "$r" "$W/raw-out.img" || fail "raw export differs"
ok "raw image exports byte for byte"
"$shoal" image capture --store "$S" --disk "$d1" --name only-root --type multipart --partitions 2 \
  --progress none >/dev/null 2>&1 || fail "capture one partition"
t=$W/only-root.img
"$shoal" image restore --store "$S" --name only-root --disk "$t" --progress none >/dev/null 2>&1 || fail "restore one partition"
check "$t" 2 ext4 "one partition"
l=$(part_loop "$t" 1 ro); [ "$(head -c 1048576 "$l" | tr -d '\0' | wc -c)" = 0 ] || fail "partition 1 was written"; unloop "$l"
ok "multipart image of partition 2 only: restored, partition 1 untouched"

# --- 5. export, and progress lines ------------------------------------------------------
"$shoal" image export --store "$S" --name gpt-lab --output "$W/export.img" --progress json > "$W/progress.json" 2>/dev/null \
  || fail "export"
[ "$(stat -c %s "$W/export.img")" = $((128 << 20)) ] || fail "export size"
check "$W/export.img" 1 vfat "export"
check "$W/export.img" 2 ext4 "export"
python3 - "$W/progress.json" <<'P'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"')]
prog = [l for l in lines if "phase" in l]
assert prog and prog[-1]["final"] and prog[-1]["done_bytes"] == prog[-1]["total_bytes"] > 0, prog[-1:]
assert all(k in prog[0] for k in ("rate_Bps", "eta_s", "done_bytes", "total_bytes"))
P
ok "export to a raw disk file; --progress json lines"

# --- 6. resume: a damaged restore is repaired, what is verified stays ------------------
t=$W/resume.img
cp "$W/gpt-128.img" "$t"
read -r start sectors < <(partx -g -o START,SECTORS -n 2 "$t")
dd if=/dev/urandom of="$t" bs=1M seek=$(( start * 512 / 1048576 + 2 )) count=2 conv=notrunc status=none
"$shoal" image restore --store "$S" --name gpt-lab --disk "$t" --resume --json --progress none > "$W/resume.json" 2>/dev/null \
  || fail "resume"
python3 - "$W/resume.json" <<'P'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert j["chunks_skipped"] > 0 and j["chunks_written"] > 0, j
P
check "$t" 1 vfat "resume"
check "$t" 2 ext4 "resume"
ok "resume rewrites only damaged chunks ($(cat "$W/resume.json" | tail -1))"

# --- 6b. a restore killed part-way leaves no partition table, and --resume finishes it -----
big=$W/big.img
truncate -s 160M "$big"
printf 'label: gpt\nstart=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' | sfdisk -q "$big"
l=$(part_loop "$big" 1); mkfs.ext4 -q "$l"; mkdir -p "$W/bm"; mount "$l" "$W/bm"; mounts+=("$W/bm")
head -c $((96 << 20)) /dev/urandom > "$W/big-random.bin"
cp -a "$ref/." "$W/big-random.bin" "$W/bm/"
umount "$W/bm"; unloop "$l"
l=$(part_loop "$big" 1 ro); dumpe2fs -h "$l" 2>&1 | grep -iE 'state|features' | sed 's/^/source: /'; unloop "$l"
"$shoal" image capture --store "$S" --disk "$big" --name big --type multipart --progress none >/dev/null 2>&1 \
  || fail "capture big"
killed=0
for delay in 0.1 0.2 0.4 0.8; do
  t=$W/killed.img; rm -f "$t"; truncate -s 160M "$t"
  # A first restore lays down the old table, so that "no table" below is the restore's doing.
  sfdisk -q "$t" < <(sfdisk -d "$big")
  if ( timeout -s KILL $delay "$shoal" image restore --store "$S" --name big --disk "$t" --threads 1 \
       --progress none >/dev/null 2>&1 ) 2>/dev/null; then
    continue  # finished before the kill: try a shorter life next time
  fi
  killed=1
  if [ -n "$(sfdisk -d "$t" 2>/dev/null | grep start=)" ]; then fail "killed restore left a partition table"; fi
  "$shoal" image restore --store "$S" --name big --disk "$t" --resume --json --progress none > "$W/r.json" 2>/dev/null \
    || fail "resume after kill"
  extra=big-random.bin check "$t" 1 ext4 "resumed after kill"
  cmp <(dd if="$big" bs=1M skip=1 count=1 status=none) <(dd if="$t" bs=1M skip=1 count=1 status=none) \
    || fail "resumed: first partition MiB differs"
  ok "restore killed after ${delay}s: no table left; --resume completed it ($(tail -1 "$W/r.json"))"
  break
done
[ $killed = 1 ] || ok "restore of big finished before every kill (nothing to resume on this machine)"
before=$(sha256sum < "$S/images/big.manifest")
kills=0
for delay in 0.05 0.1 0.2; do
  rc=0
  ( timeout -s KILL $delay "$shoal" image capture --store "$S" --disk "$W/gpt-128.img" --name big --type multipart \
      --progress none >/dev/null 2>&1 ) 2>/dev/null || rc=$?
  [ $rc = 137 ] || break  # it finished: the image is rightly replaced, stop here
  # Whole or not at all: the old image, or (killed just after publishing) the new one, whole.
  "$shoal" image verify big --store "$S" --progress none >/dev/null 2>&1 || fail "image after a killed capture"
  [ "$(sha256sum < "$S/images/big.manifest")" = "$before" ] || break
  kills=$((kills + 1))
done
[ $kills -gt 0 ] || fail "no capture was killed part-way"
ok "$kills capture(s) killed part-way left the previous version of the image intact"

# --- 6c. two disks, one image ------------------------------------------------------------
"$shoal" image capture --store "$S" --disk "$d1" --disk "$d2" --name both --type all-disks --progress none \
  >/dev/null 2>&1 || fail "capture all disks"
rm -f "$W/both1.img" "$W/both2.img"
"$shoal" image restore --store "$S" --name both --disk "$W/both1.img" --disk "$W/both2.img" --progress none \
  >/dev/null 2>&1 || fail "restore all disks"
check "$W/both1.img" 1 vfat "all-disks d1"
check "$W/both1.img" 2 ext4 "all-disks d1"
check "$W/both2.img" 1 ext4 "all-disks d2"
check "$W/both2.img" 2 ntfs "all-disks d2"
ok "all-disks image of two disks restored onto two files"

# --- 7. bad input -------------------------------------------------------------------------
t=$W/small.img; truncate -s 40M "$t"; sum=$(sha256sum < "$t")
if "$shoal" image restore --store "$S" --name mbr-loop --disk "$t" --progress none 2>"$W/err"; then fail "too small accepted"; fi
grep -q "needs at least" "$W/err" || { cat "$W/err"; fail "too small: message"; }
[ "$(sha256sum < "$t")" = "$sum" ] || fail "too small: target changed"
ok "target too small: $(cat "$W/err")"

m=$S/images/gpt-lab.manifest
cp "$m" "$W/manifest.bak"
head -c $(( $(stat -c %s "$m") - 10 )) "$W/manifest.bak" > "$m"
if "$shoal" image info gpt-lab --store "$S" 2>"$W/err"; then fail "truncated manifest accepted"; fi
grep -q "gpt-lab.manifest" "$W/err" || { cat "$W/err"; fail "truncated manifest: message"; }
ok "truncated manifest: $(cat "$W/err")"
cp "$W/manifest.bak" "$m"
printf '\x01' | dd of="$m" bs=1 seek=60 conv=notrunc status=none
if "$shoal" image info gpt-lab --store "$S" 2>"$W/err"; then fail "corrupt manifest accepted"; fi
grep -q "checksum" "$W/err" || { cat "$W/err"; fail "corrupt manifest: message"; }
ok "corrupt manifest: $(cat "$W/err")"
cp "$W/manifest.bak" "$m"

chunk=$("$shoal" image info gpt-lab --store "$S" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
r = [x for x in j["disks"][0]["regions"] if x["partition"] == 2][0]
print(r["chunk_list"][0]["stored_sha256"])')
cf=$S/chunks/${chunk:0:2}/${chunk:2:2}/$chunk
cp "$cf" "$W/chunk.bak"
printf 'XXXX' | dd of="$cf" bs=1 seek=100 conv=notrunc status=none
if "$shoal" image verify gpt-lab --store "$S" --progress none >"$W/out" 2>"$W/err"; then fail "verify passed a bad chunk"; fi
grep -q "$chunk" "$W/err" || { cat "$W/err"; fail "verify: message"; }
ok "corrupt chunk found by verify: $(head -1 "$W/err")"
t=$W/bad-chunk.img
if "$shoal" image restore --store "$S" --name gpt-lab --disk "$t" --progress none 2>"$W/err"; then fail "restore used a bad chunk"; fi
grep -q "$chunk" "$W/err" || { cat "$W/err"; fail "restore bad chunk: message"; }
if sfdisk -d "$t" >/dev/null 2>&1 && [ -n "$(sfdisk -d "$t" 2>/dev/null | grep start=)" ]; then
  fail "a failed restore left a partition table"
fi
ok "corrupt chunk refused by restore, no partition table left: $(cat "$W/err")"
mv "$cf" "$W/chunk.moved"
t=$W/missing.img; truncate -s 128M "$t"; sum=$(sha256sum < "$t")
if "$shoal" image restore --store "$S" --name gpt-lab --disk "$t" --progress none 2>"$W/err"; then fail "missing chunk"; fi
grep -q "missing" "$W/err" || { cat "$W/err"; fail "missing chunk: message"; }
[ "$(sha256sum < "$t")" = "$sum" ] || fail "missing chunk: target changed"
ok "missing chunk: nothing written: $(cat "$W/err")"
cp "$W/chunk.bak" "$cf"
"$shoal" image verify gpt-lab --store "$S" --progress none >/dev/null 2>&1 || fail "verify after repair"

# --- 8. dedup and rm ----------------------------------------------------------------------
count() { find "$S/chunks" -type f | wc -l; }
"$shoal" image capture --store "$S" --disk "$W/gpt-128.img" --name gpt-again --type multipart --progress none \
  >/dev/null 2>&1 || fail "second capture"
before=$(count)
"$shoal" image capture --store "$S" --disk "$r" --name raw-again --type raw --progress none >/dev/null 2>&1 || fail "raw again"
after=$(count)
[ "$before" = "$after" ] || fail "a second copy of the raw image stored new chunks ($before -> $after)"
"$shoal" image rm raw --store "$S" >/dev/null || fail "rm raw"
# (rm also sweeps the chunks the killed captures above left behind, so count by use.)
"$shoal" image verify raw-again --store "$S" --progress none >/dev/null 2>&1 || fail "raw-again after rm"
"$shoal" image rm raw-again --store "$S" >/dev/null || fail "rm raw-again"
[ "$(count)" -lt "$after" ] || fail "rm freed nothing"
for n in $("$shoal" image list --store "$S" --json | python3 -c 'import json,sys; print(" ".join(x["name"] for x in json.load(sys.stdin)))'); do
  "$shoal" image rm "$n" --store "$S" >/dev/null || fail "rm $n"
done
[ "$(count)" = 0 ] || fail "chunks left after every image was removed"
ok "identical content stored once ($after chunks with a second raw copy); rm keeps shared chunks, frees the rest"

echo "fs_test: $pass checks passed"
