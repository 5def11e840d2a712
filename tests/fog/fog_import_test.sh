#!/usr/bin/env bash
# FOG import against the real tools: a disk file with ext4, FAT32, NTFS and swap
# partitions filled with real files, captured as FOS does it (partclone -a0 into zstd or
# pigz, split into .000/.001/… pieces, sfdisk -d, dd of the MBR), imported with
# `shoal image import-fog`, restored with `shoal image restore` to a new file, checked with
# fsck, and every file compared with the original. Then the broken directories: a missing
# piece, a corrupt piece, a bad partclone header; none may publish an image.
# Needs root (loop devices, mounts) and the tools of tools/setup; skips (77) otherwise.
# Usage: fog_import_test.sh SHOAL_BINARY
set -euo pipefail
shoal=$(realpath "$1")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
for t in partclone.ext4 partclone.fat partclone.ntfs zstd pigz sfdisk losetup mkfs.ext4 \
         mkfs.vfat mkfs.ntfs mkswap mcopy ntfs-3g e2fsck fsck.vfat ntfsfix blkid; do
  command -v "$t" >/dev/null || skip "$t is not installed (tools/setup)"
done
losetup -f >/dev/null 2>&1 || skip "no free loop device"

work=$(mktemp -d /tmp/shoal-fog-import.XXXXXX)
loops=()
mounts=()
cleanup() {
  set +e
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# A loop device over one partition of a disk file, as the kernel's /dev/sdaN would be.
part_loop() {  # FILE PARTNUMBER
  local start size
  start=$(sfdisk -d "$1" | awk -v n="$1$2" '$1 == n { sub(/,/, "", $4); print $4 }')
  size=$(sfdisk -d "$1" | awk -v n="$1$2" '$1 == n { sub(/,/, "", $6); print $6 }')
  local l
  l=$(losetup -f --show -o $((start * 512)) --sizelimit $((size * 512)) "$1")
  loops+=("$l")
  echo "$l"
}

# ---- the master disk ----
truncate -s 160M disk.img
sfdisk -q disk.img <<'EOF'
label: dos
label-id: 0x5eed0f06
start=2048, size=40M, type=83, bootable
size=48M, type=c
size=40M, type=7
type=82
EOF
# Boot code in the MBR's first 440 bytes, as a boot loader would leave it.
printf 'SHOAL-FOG-TEST-BOOTCODE' | dd of=disk.img conv=notrunc bs=1 seek=0 status=none

# Real files: text, binaries, a tree, some random data, a big one.
mkdir -p src/tree/deep/er src/empty
cp -r /usr/share/common-licenses src/licenses
cp "$(command -v sfdisk)" src/tree/sfdisk.bin
head -c 3000000 /dev/urandom > src/random.bin
seq 1 200000 > src/tree/deep/numbers.txt
echo "hello from shoal" > src/tree/deep/er/hello.txt
: > src/tree/zero-length

p1=$(part_loop disk.img 1)
p2=$(part_loop disk.img 2)
p3=$(part_loop disk.img 3)
p4=$(part_loop disk.img 4)
mkfs.ext4 -q -L fogroot -d src "$p1"
mkfs.vfat -F 32 -s 1 -n FOGFAT "$p2" >/dev/null
mcopy -s -i "$p2" src/licenses src/tree src/random.bin ::/
mkfs.ntfs -Q -q -L fogntfs "$p3" 2>/dev/null
mkdir mnt
ntfs-3g "$p3" mnt
mounts+=("$work/mnt")
cp -r src/. mnt/
umount mnt
mounts=()
mkswap -q -U 0a1b2c3d-1111-4222-8333-123456789abc "$p4"

# ---- capture as FOS does (funcs.sh savePartition / uploadFormat) ----
fog=fogimg
mkdir "$fog"
sfdisk -d disk.img > "$fog/d1.partitions"
dd if=disk.img of="$fog/d1.mbr" bs=512 count=2048 status=none
echo "4 0a1b2c3d-1111-4222-8333-123456789abc" > "$fog/d1.original.swapuuids"
echo -n "" > "$fog/d1.original.fstypes"
# ext4: zstd, split (as FOG's format 6), left as .000/.001/… (a capture in progress looks so)
partclone.ext4 -c -s "$p1" -o - -a0 -L "$work/pc1.log" 2>/dev/null \
  | zstd -q -T0 -19 | split -a 3 -d -b 1M - "$fog/d1p1.img."
# FAT32: pigz, split, then FOG's rename of .000 to the plain name
partclone.fat -c -s "$p2" -o - -a0 -L "$work/pc2.log" 2>/dev/null \
  | pigz -6 | split -a 3 -d -b 512K - "$fog/d1p2.img."
mv "$fog/d1p2.img.000" "$fog/d1p2.img"
# NTFS: zstd whole, with partclone's CRC32 (as FOG's imager path writes it)
partclone.ntfs -c -s "$p3" -o - -L "$work/pc3.log" 2>/dev/null | zstd -q -T0 > "$fog/d1p3.img"
for l in "${loops[@]}"; do losetup -d "$l"; done
loops=()
ls -l "$fog"
[ "$(ls "$fog" | grep -c '^d1p1.img.0')" -ge 2 ] || fail "the ext4 stream should be split"
[ -f "$fog/d1p2.img.001" ] || fail "the FAT stream should be split"

# ---- import ----
store="$work/store"
"$shoal" image import-fog "$fog" --name fogtest --store "$store" 2>&1 | tee import.log
grep -q "single disk\|multiple partitions" import.log || fail "import did not say the image kind"
[ -f "$store/images/fogtest.manifest" ] || fail "no manifest published"

# ---- restore to a new file and check ----
truncate -s 160M restored.img
"$shoal" image restore --name fogtest --store "$store" --disk restored.img 2>&1 | tee restore.log
cmp -n 440 disk.img restored.img || fail "the boot code of d1.mbr was not restored"
diff <(sfdisk -d disk.img | sed 's/disk.img/D/') <(sfdisk -d restored.img | sed 's/restored.img/D/') \
  || fail "the restored partition table differs"
r1=$(part_loop restored.img 1)
r2=$(part_loop restored.img 2)
r3=$(part_loop restored.img 3)
r4=$(part_loop restored.img 4)
e2fsck -fn "$r1" >/dev/null || fail "e2fsck of the restored ext4"
fsck.vfat -n "$r2" >/dev/null || fail "fsck.vfat of the restored FAT32"
ntfsfix -n "$r3" >/dev/null || fail "ntfsfix of the restored NTFS"
[ "$(blkid -o value -s TYPE "$r4")" = swap ] || fail "partition 4 is not swap"
[ "$(blkid -o value -s UUID "$r4")" = 0a1b2c3d-1111-4222-8333-123456789abc ] \
  || fail "swap UUID not restored"

mkdir m1 m3 fat
mount -o ro "$r1" m1
mounts+=("$work/m1")
diff -r src m1 --exclude=lost+found || fail "ext4 files differ"
ntfs-3g -o ro "$r3" m3
mounts+=("$work/m3")
diff -r src m3 || fail "NTFS files differ"
mcopy -s -i "$r2" ::/licenses ::/tree ::/random.bin fat/
diff -r src/licenses fat/licenses && diff -r src/tree fat/tree && cmp src/random.bin fat/random.bin \
  || fail "FAT32 files differ"
for m in "${mounts[@]}"; do umount "$m"; done
mounts=()
echo "restored: fsck clean, every file matches"

# ---- broken directories: clear errors, nothing published ----
expect_refused() {  # DIR NAME TEXT...
  local dir=$1 name=$2
  shift 2
  if "$shoal" image import-fog "$dir" --name "$name" --store "$store" > err.log 2>&1; then
    fail "$name: import of a broken directory succeeded"
  fi
  cat err.log
  for t in "$@"; do
    grep -q -- "$t" err.log || fail "$name: error does not say \"$t\""
  done
  [ ! -e "$store/images/$name.manifest" ] || fail "$name: a broken import published an image"
}
cp -r "$fog" missing
rm missing/d1p1.img.001
expect_refused missing missing "d1p1.img.001 is missing"
cp -r "$fog" lastgone
last=$(ls lastgone | grep '^d1p1.img.0' | sort | tail -1)
rm "lastgone/$last"
expect_refused lastgone lastgone "truncated" "d1p1.img"
cp -r "$fog" corrupt
python3 - corrupt/d1p1.img.000 <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
for i in range(len(b) // 2, len(b) // 2 + 64):
    b[i] ^= 0x5A
open(p, 'wb').write(b)
EOF
expect_refused corrupt corrupt "d1p1.img.000" "corrupt"
cp -r "$fog" badheader
zstd -dc "$fog/d1p3.img" > p3.pc
printf '\x01' | dd of=p3.pc bs=1 seek=60 conv=notrunc status=none
zstd -q -f p3.pc -o badheader/d1p3.img
expect_refused badheader badheader "d1p3.img" "header CRC32"
[ "$("$shoal" image list --store "$store" 2>/dev/null | grep -c fogtest)" -ge 1 ] \
  || fail "the good image went missing"
echo "PASS"
