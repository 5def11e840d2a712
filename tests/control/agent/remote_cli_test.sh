#!/usr/bin/env bash
# `shoal image capture/restore --server` against a real shoald (started here on 127.0.0.1,
# SQLite, TFTP off): a disk file with a partition table and an ext4 full of files is
# captured with default 4 MiB chunks through shoald's /store/ routes and its HTTP body
# limits, the image's row is checked over the API, the image is restored to a new file,
# which e2fsck and debugfs check file by file. No root needed.
# Usage: remote_cli_test.sh PATH/TO/shoal PATH/TO/shoald
set -euo pipefail
shoal=$(realpath "$1")
shoald=$(realpath "$2")
for t in mkfs.ext4 e2fsck debugfs sfdisk curl python3; do
  command -v $t >/dev/null || { echo "skip: $t missing"; exit 77; }
done
W=$(mktemp -d /tmp/shoal-remote-cli.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$W/shoald.log" ] && tail -20 "$W/shoald.log" >&2; exit 1; }
pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/images"
cat > "$W/shoald.json" <<JSON
{"store": "sqlite://$W/shoald.db", "images": "$W/images", "clientos": "$W",
 "admin": {"password_file": "$W/admin-password"},
 "boot": {"tftp": {"enabled": false}, "http": {"address": "127.0.0.1", "port": $port}}}
JSON
"$shoald" -c "$W/shoald.json" > "$W/shoald.log" 2>&1 &
pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 100); do
  curl -fs "$base/metrics" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "$base/metrics" >/dev/null || fail "shoald did not come up"
password=$(head -1 "$W/admin-password")
token=$(curl -fs -X POST -H 'Content-Type: application/json' \
  -d "{\"user\": \"admin\", \"password\": \"$password\"}" "$base/api/v1/login" | json 'd["token"]') \
  || fail "login"
ok "shoald up, logged in"

# The disk: 10 MiB of random data, so chunks are full 4 MiB ones that do not compress.
mkdir -p "$W/ref/d"
cp -r /usr/share/doc/bash "$W/ref/d/"
head -c 10000000 /dev/urandom > "$W/ref/random.bin"
echo remote-cli-marker > "$W/ref/marker"
truncate -s 64M "$W/disk.img"
echo 'start=2048, type=83' | sfdisk -q "$W/disk.img"
mkfs.ext4 -q -F -d "$W/ref" -E offset=1048576 "$W/disk.img" 60M

# Without credentials: refused, nothing stored.
if "$shoal" image capture --disk "$W/disk.img" --name lab --type multipart --server "$base" \
    --token "" --progress none > "$W/out" 2>&1; then
  fail "capture without a token succeeded"
fi
grep -q "HTTP 401" "$W/out" || fail "no 401 in: $(cat "$W/out")"
[ ! -e "$W/images/images/lab.manifest" ] || fail "published without a token"
ok "capture without a token refused: $(head -c 160 "$W/out")"

"$shoal" image capture --disk "$W/disk.img" --name lab --type multipart --server "$base" \
  --token "$token" --progress none --json > "$W/cap.json" || fail "capture"
used=$(json 'd["used_bytes"]' < "$W/cap.json")
[ "$used" -gt 10000000 ] || fail "used bytes $used"
[ -f "$W/images/images/lab.manifest" ] || fail "no manifest in shoald's store"
ok "captured to shoald: $used used bytes"

# The store is reachable over HTTP only through /store/ with credentials.
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/images/images/lab.manifest")
[ "$code" = 404 ] || fail "the store's manifest served without credentials at /images/ (HTTP $code)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/store/images/lab/manifest")
[ "$code" = 401 ] || fail "/store/ manifest without credentials: HTTP $code, not 401"
ok "the store is not served without credentials (/images/ 404, /store/ 401)"

row=$(curl -fs -H "Authorization: Bearer $token" "$base/api/v1/images?limit=10")
[ "$(echo "$row" | json '[i for i in d["items"] if i["name"]=="lab"][0]["size_bytes"]')" = "$used" ] \
  || fail "image row: $row"
[ "$(echo "$row" | json '[i for i in d["items"] if i["name"]=="lab"][0]["disks"][0]["partitions"][0]["fs"]')" = ext4 ] \
  || fail "image row disks: $row"
ok "the image's row has its size and disks"

"$shoal" image restore --disk "$W/back.img" --name lab --server "$base" --token "$token" \
  --progress none || fail "restore"
e2fsck -fn "$W/back.img?offset=1048576" >/dev/null || fail "e2fsck on the restored disk"
mkdir "$W/got"
debugfs -R "rdump / $W/got" "$W/back.img?offset=1048576" 2>/dev/null
diff -r "$W/ref" "$W/got" -x lost+found || fail "files differ"
ok "restored from shoald: e2fsck clean, every file the same"

# A damaged chunk in shoald's store: the restore refuses it and names it.
chunk=$(find "$W/images/chunks" -type f -size +1M | head -1)
printf 'X' | dd of="$chunk" bs=1 seek=100 conv=notrunc 2>/dev/null
if "$shoal" image restore --disk "$W/back2.img" --name lab --server "$base" --token "$token" \
    --progress none > "$W/out" 2>&1; then
  fail "restore from a damaged store succeeded"
fi
grep -q "SHA-256" "$W/out" || fail "no SHA-256 message: $(cat "$W/out")"
if sfdisk -d "$W/back2.img" >/dev/null 2>&1; then fail "a partition table on a failed restore"; fi
ok "a damaged chunk is refused before it is written: $(head -c 200 "$W/out")"

kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "remote cli: $pass passed"
