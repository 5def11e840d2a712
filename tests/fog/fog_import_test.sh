#!/usr/bin/env bash
# FOG import against the real tools, three images as FOS captures them:
#  1. multiple partitions, dos: ext4, FAT32, NTFS and swap filled with real files
#     (partclone -a0 into zstd or pigz, split into .000/.001/… pieces, sfdisk -d, dd of
#     the MBR);
#  2. resizable, gpt: FAT32 (fixed) and ext4 shrunk with resize2fs -M and its partition
#     with it, d1.minimum.partitions, sgdisk -b for d1.mbr;
#  3. raw: partclone.imager of the whole disk.
# Each is imported with `shoal image import-fog`, restored with `shoal image restore` to a
# new file (the resizable one also to a smaller one), checked with fsck, and every file
# compared with the original. Then the broken directories: a missing piece, a lost last
# piece, a corrupt piece, a bad partclone header; none may publish an image.
# Needs root (loop devices, mounts) and the tools of tools/setup; skips (77) otherwise.
# Usage: fog_import_test.sh SHOAL_BINARY
set -euo pipefail
shoal=$(realpath "$1")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
for t in partclone.ext4 partclone.fat partclone.ntfs partclone.imager zstd pigz sfdisk sgdisk \
         losetup mkfs.ext4 mkfs.vfat mkfs.ntfs mkswap mcopy ntfs-3g e2fsck fsck.vfat ntfsfix \
         resize2fs dumpe2fs blkid blockdev; do
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

# ---- 2. resizable, gpt: FOS shrinks the filesystem and its partition, then captures ----
truncate -s 200M gpt.img
sfdisk -q gpt.img <<'EOF'
label: gpt
size=40M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
EOF
g1=$(part_loop gpt.img 1)
g2=$(part_loop gpt.img 2)
mkfs.vfat -F 32 -s 1 -n EFI "$g1" >/dev/null
mcopy -s -i "$g1" src/tree ::/
mkfs.ext4 -q -L resizable -d src "$g2"
rz=resizable
mkdir "$rz"
sfdisk -d gpt.img > "$rz/d1.partitions"
echo "1" > "$rz/d1.fixed_size_partitions"
echo "/dev/sda2 extfs" > "$rz/d1.original.fstypes"
: > "$rz/d1.original.swapuuids"
e2fsck -fyq "$g2" >/dev/null 2>&1 || true
resize2fs -M "$g2" >/dev/null 2>&1
blocks=$(dumpe2fs -h "$g2" 2>/dev/null | awk -F: '/^Block count/ {print $2+0}')
bsize=$(dumpe2fs -h "$g2" 2>/dev/null | awk -F: '/^Block size/ {print $2+0}')
shrunk=$(( (blocks * bsize + 4 * 1048576) / 512 / 2048 * 2048 ))  # + slack, whole MiB
for l in "${loops[@]}"; do losetup -d "$l"; done
loops=()
echo ", $shrunk" | sfdisk -q -N 2 gpt.img
sfdisk -d gpt.img > "$rz/d1.minimum.partitions"
sgdisk -b "$rz/d1.mbr" gpt.img >/dev/null
g1=$(part_loop gpt.img 1)
g2=$(part_loop gpt.img 2)
partclone.fat -c -s "$g1" -o - -a0 -L "$work/pc4.log" 2>/dev/null | pigz > "$rz/d1p1.img"
partclone.ext4 -c -s "$g2" -o - -a0 -L "$work/pc5.log" 2>/dev/null \
  | zstd -q -T0 | split -a 3 -d -b 2M - "$rz/d1p2.img."
mv "$rz/d1p2.img.000" "$rz/d1p2.img"
for l in "${loops[@]}"; do losetup -d "$l"; done
loops=()
"$shoal" image import-fog "$rz" --name fogresize --store "$store" 2>&1 | tee rz.log
grep -q "resizable" rz.log || fail "the gpt image should import as resizable"

check_gpt_restore() {  # SIZE
  rm -f rz-restored.img
  truncate -s "$1" rz-restored.img
  "$shoal" image restore --name fogresize --store "$store" --disk rz-restored.img
  local q1 q2 got_blocks got_bsize part_bytes
  q1=$(part_loop rz-restored.img 1)
  q2=$(part_loop rz-restored.img 2)
  fsck.vfat -n "$q1" >/dev/null || fail "$1: fsck.vfat of the restored EFI partition"
  e2fsck -fn "$q2" >/dev/null || fail "$1: e2fsck of the restored ext4"
  # The filesystem fills its partition again, as FOG's expandPartition makes it.
  got_blocks=$(dumpe2fs -h "$q2" 2>/dev/null | awk -F: '/^Block count/ {print $2+0}')
  got_bsize=$(dumpe2fs -h "$q2" 2>/dev/null | awk -F: '/^Block size/ {print $2+0}')
  part_bytes=$(blockdev --getsize64 "$q2")
  [ $((got_blocks * got_bsize + 4 * 1048576)) -gt "$part_bytes" ] \
    || fail "$1: ext4 of $((got_blocks * got_bsize)) bytes does not fill its $part_bytes-byte partition"
  mkdir -p rm2 rfat
  mount -o ro "$q2" rm2
  mounts+=("$work/rm2")
  diff -r src rm2 --exclude=lost+found || fail "$1: ext4 files differ"
  umount rm2
  mounts=()
  rm -rf rfat/*
  mcopy -s -i "$q1" ::/tree rfat/
  diff -r src/tree rfat/tree || fail "$1: EFI files differ"
  for l in "${loops[@]}"; do losetup -d "$l"; done
  loops=()
  echo "resizable restore to $1: fsck clean, fills its partition, every file matches"
}
check_gpt_restore 200M
check_gpt_restore 120M

# ---- 3. raw: partclone.imager of the whole disk, as FOS's "dd" type ----
raw=rawimg
mkdir "$raw"
partclone.imager -c -s disk.img -o - -a0 -L "$work/pc6.log" 2>/dev/null \
  | pigz > "$raw/Win10Raw.000"
"$shoal" image import-fog "$raw" --name fograw --store "$store" 2>&1 | tee raw.log
grep -q "raw" raw.log || fail "the raw image should import as raw"
rm -f raw-restored.img
truncate -s 160M raw-restored.img
"$shoal" image restore --name fograw --store "$store" --disk raw-restored.img
cmp disk.img raw-restored.img || fail "the raw image does not restore byte for byte"
echo "raw restore: byte for byte"

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
