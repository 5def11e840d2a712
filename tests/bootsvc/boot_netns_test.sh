#!/usr/bin/env bash
# `shoal boot`'s TFTP and HTTP services against real clients in network namespaces:
#  - tftp-hpa (octet and netascii), atftp (with and without blksize, tsize, timeout and
#    windowsize) and curl (tftp://, with and without options) fetch files and the bytes match;
#  - hostile names (.., absolute paths, symlinks out of the root, a FIFO) get errors, and
#    nothing from outside the root ever reaches a client;
#  - curl fetches the iPXE script for a MAC (task, menu, garbage -> 400) and static files;
#  - `shoal boot --check` explains a taken port, missing boot files and an interface
#    without an address, and exits non-zero.
# Usage: boot_netns_test.sh SHOAL_BINARY SOURCE_DIR   (root; exits 77 otherwise)
set -euo pipefail

shoal=$1 src=$2
. "$src/tools/netlab.sh"
lab_need_root
for tool in tftp atftp curl cmp; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (tools/setup installs it)" >&2; exit 77; }
done

P=bt$$
tmp=$(mktemp -d /tmp/shoal-boot-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  lab_down "$P"
  rm -rf "$tmp"
}
LAB_NO_TRAP=1
trap cleanup EXIT
fail() {
  echo "--- shoal log: failures, then the last 30 lines" >&2
  grep "failed:" "$tmp/shoal.log" >&2 || true
  tail -n 30 "$tmp/shoal.log" >&2 || true
  echo "FAIL: $*" >&2
  exit 1
}
checks=0
pass() { checks=$((checks + 1)); }

# The roots: files of sizes around block edges, a secret next to the root, hostile entries.
mkdir -p "$tmp/tftp/sub" "$tmp/http/clientos" "$tmp/out"
head -c 0 /dev/urandom > "$tmp/tftp/empty.bin"
head -c 511 /dev/urandom > "$tmp/tftp/short.bin"
head -c 512 /dev/urandom > "$tmp/tftp/block.bin"
head -c 1000003 /dev/urandom > "$tmp/tftp/sub/medium.bin"
head -c 5242880 /dev/urandom > "$tmp/tftp/big.bin"
printf 'line one\nline two\r\nno newline at the end' > "$tmp/tftp/text.txt"
echo "SECRET-OUTSIDE-THE-ROOT" > "$tmp/secret.txt"
ln -s ../secret.txt "$tmp/tftp/up-link"
ln -s /etc/passwd "$tmp/tftp/passwd-link"
ln -s "$tmp" "$tmp/tftp/tmp-dir-link"
mkfifo "$tmp/tftp/fifo"
cp "$tmp/tftp/big.bin" "$tmp/http/clientos/vmlinuz"
head -c 777777 /dev/urandom > "$tmp/http/clientos/initrd.img"
ln -s ../../secret.txt "$tmp/http/clientos/up-link"
cat > "$tmp/tasks.json" <<'JSON'
{"tasks": {"52:54:00:aa:bb:01": {"type": "deploy", "args": {"image": "lab-win11"}}}}
JSON
cat > "$tmp/boot.json" <<JSON
{
  "dhcp": {"enabled": false},
  "tftp": {"root": "$tmp/tftp", "install_boot_files": false, "timeout_ms": 500},
  "http": {"root": "$tmp/http"},
  "ipxe": {"tasks_file": "$tmp/tasks.json"}
}
JSON

lab_up "$P" 2
ip netns exec "$P-s" "$shoal" --log debug boot -c "$tmp/boot.json" > "$tmp/shoal.log" 2>&1 &
pids+=($!)
for i in $(seq 100); do
  lab_exec "$P-r1" curl -sf -o /dev/null http://10.77.0.1/status && break
  [ "$i" = 100 ] && fail "shoal boot did not start"
  sleep 0.1
done

client() { lab_exec "$P-r1" timeout 60 "$@"; }
same() {  # name fetched-file what
  cmp -s "$tmp/tftp/$1" "$2" || fail "$3: bytes of $1 differ"
  pass
}

# ---- tftp-hpa: plain RFC 1350 ----
for f in empty.bin short.bin block.bin sub/medium.bin big.bin; do
  out="$tmp/out/hpa-$(basename "$f")"
  client tftp -m binary 10.77.0.1 -c get "$f" "$out" || fail "tftp-hpa get $f"
  same "$f" "$out" "tftp-hpa"
done
# netascii: converted to CR LF on the wire and back by the client.
client tftp -m netascii 10.77.0.1 -c get text.txt "$tmp/out/hpa-text.txt" || fail "tftp-hpa netascii"
same text.txt "$tmp/out/hpa-text.txt" "tftp-hpa netascii"

# ---- atftp: each option alone and all together ----
atftp_opts=(
  ""
  "--option|blksize 1428"
  "--option|tsize"
  "--option|timeout 2"
  "--option|windowsize 8"
  "--option|blksize 8192|--option|tsize|--option|timeout 1|--option|windowsize 16"
)
n=0
for spec in "${atftp_opts[@]}"; do
  n=$((n + 1))
  IFS='|' read -r -a args <<< "$spec"
  for f in short.bin block.bin sub/medium.bin big.bin; do
    out="$tmp/out/atftp-$n-$(basename "$f")"
    client atftp "${args[@]}" --get -r "$f" -l "$out" 10.77.0.1 > "$tmp/atftp.log" 2>&1 \
      || fail "atftp ${args[*]} get $f: $(cat "$tmp/atftp.log")"
    same "$f" "$out" "atftp ${args[*]}"
  done
done
# The options really were negotiated: the server logged its OACKs.
grep -q "OACK 'big.bin' blksize=1428" "$tmp/shoal.log" || fail "no blksize OACK for atftp"
grep -q "OACK 'big.bin' tsize=5242880" "$tmp/shoal.log" || fail "no tsize OACK for atftp"
grep -q "OACK 'big.bin' timeout=2" "$tmp/shoal.log" || fail "no timeout OACK for atftp"
grep -q "OACK 'big.bin' windowsize=8" "$tmp/shoal.log" || fail "no windowsize OACK for atftp"
grep -q "OACK 'big.bin' blksize=8192 tsize=5242880 timeout=1 windowsize=16" "$tmp/shoal.log" \
  || fail "no combined OACK for atftp"
pass

# ---- curl: tftp:// with its default options, a block size, and none ----
for curl_args in "" "--tftp-blksize 1468" "--tftp-blksize 65464" "--tftp-no-options"; do
  for f in empty.bin short.bin block.bin sub/medium.bin big.bin; do
    out="$tmp/out/curl-$(basename "$f")"
    rm -f "$out"
    # shellcheck disable=SC2086
    client curl -sS $curl_args -o "$out" "tftp://10.77.0.1/$f" || fail "curl $curl_args $f"
    [ -f "$out" ] || : > "$out"  # curl writes no file for 0 bytes
    same "$f" "$out" "curl $curl_args"
  done
done
grep -q "OACK 'big.bin' blksize=65464" "$tmp/shoal.log" || fail "curl's blksize was not negotiated"

# ---- many clients at once: the same file, one open copy ----
for i in $(seq 1 20); do
  client curl -sS --tftp-blksize 1468 -o "$tmp/out/many-$i" tftp://10.77.0.1/big.bin &
done
wait_ok=0
for job in $(jobs -p); do
  case " ${pids[*]} " in *" $job "*) continue ;; esac
  wait "$job" || wait_ok=1
done
[ "$wait_ok" = 0 ] || fail "a parallel curl failed"
for i in $(seq 1 20); do same big.bin "$tmp/out/many-$i" "20 curls at once"; done

# ---- hostile names: errors, and never a byte from outside the root ----
hostile=("../secret.txt" "../../../../etc/passwd" "/etc/passwd" "up-link" "passwd-link"
         "tmp-dir-link/secret.txt" "sub/../../secret.txt" "fifo" "sub" "missing.bin")
for name in "${hostile[@]}"; do
  rm -f "$tmp/out/h"
  if client tftp -m binary 10.77.0.1 -c get "$name" "$tmp/out/h" 2>"$tmp/out/err" \
     && [ -s "$tmp/out/h" ]; then
    fail "tftp-hpa got '$name'"
  fi
  if client atftp --get -r "$name" -l "$tmp/out/h2" 10.77.0.1 > "$tmp/out/err" 2>&1; then
    fail "atftp got '$name'"
  fi
  if client curl -sS --path-as-is -o "$tmp/out/h3" "tftp://10.77.0.1/$name" 2>/dev/null; then
    fail "curl got '$name'"
  fi
  pass
done
grep -q "refused '../secret.txt': name has a '..' component" "$tmp/shoal.log" || fail "no log line for .."
grep -q "refused 'up-link': name leads out of the root" "$tmp/shoal.log" || fail "no log line for a symlink out"
grep -q "refused 'fifo': not a regular file" "$tmp/shoal.log" || fail "no log line for the FIFO"
# No client ever received the secret or /etc/passwd's first line.
passwd_head=$(head -n 1 /etc/passwd)
if grep -rqs -e SECRET-OUTSIDE-THE-ROOT -e "$passwd_head" "$tmp/out"; then
  fail "bytes from outside the root reached a client"
fi
pass

# ---- HTTP: the iPXE script by MAC, static files ----
http() { client curl -sS --path-as-is -o "$2" -w '%{http_code}' "http://10.77.0.1$1"; }
code=$(http "/boot?mac=52-54-00-AA-BB-01" "$tmp/out/task.ipxe")
[ "$code" = 200 ] || fail "/boot for the task MAC: $code"
grep -q "^kernel http://10.77.0.1/clientos/vmlinuz initrd=initrd.img shoal.server=http://10.77.0.1 shoal.mac=52:54:00:aa:bb:01 shoal.task=deploy shoal.image=lab-win11 " "$tmp/out/task.ipxe" \
  || fail "task script: $(cat "$tmp/out/task.ipxe")"
pass
code=$(http "/boot?mac=52:54:00:aa:bb:02" "$tmp/out/menu.ipxe")
[ "$code" = 200 ] && grep -q "^choose --default local --timeout 5000 target" "$tmp/out/menu.ipxe" \
  && grep -q "^sanboot --no-describe --drive 0x80" "$tmp/out/menu.ipxe" || fail "menu script: $code"
pass
for bad in "/boot?mac=zz:54:00:aa:bb:02" "/boot?mac=52:54:00:aa:bb" "/boot?mac=%0Achain%20http://evil/"; do
  code=$(http "$bad" "$tmp/out/bad")
  [ "$code" = 400 ] || fail "$bad answered $code, not 400"
  ! grep -q kernel "$tmp/out/bad" || fail "$bad got a boot script"
  pass
done
code=$(http "/clientos/vmlinuz" "$tmp/out/vmlinuz")
[ "$code" = 200 ] && cmp -s "$tmp/out/vmlinuz" "$tmp/http/clientos/vmlinuz" || fail "kernel over HTTP: $code"
code=$(http "/clientos/initrd.img" "$tmp/out/initrd")
[ "$code" = 200 ] && cmp -s "$tmp/out/initrd" "$tmp/http/clientos/initrd.img" || fail "initrd over HTTP"
code=$(http "/tftp/sub/medium.bin" "$tmp/out/medium-http")
[ "$code" = 200 ] && cmp -s "$tmp/out/medium-http" "$tmp/tftp/sub/medium.bin" || fail "TFTP root over HTTP"
pass
for bad in "/../secret.txt" "/clientos/up-link" "/clientos/%2e%2e/%2e%2e/secret.txt" "/tftp/up-link" "/tftp/../secret.txt"; do
  code=$(http "$bad" "$tmp/out/bad")
  [ "$code" = 403 ] || fail "$bad answered $code, not 403"
  ! grep -q SECRET "$tmp/out/bad" || fail "$bad served the secret"
  pass
done

# The counters agree: nothing failed, hostile requests were refused, one copy per file.
status=$(client curl -sS http://10.77.0.1/status)
python3 - "$status" <<'PY' || fail "counters: $status"
import json, sys
t = json.loads(sys.argv[1])["tftp"]
assert t["failed"] == 0, t
assert t["refused"] == 30, t  # 10 hostile names, 3 clients
assert t["completed"] == 70, t  # 6 tftp-hpa, 24 atftp, 20 curl, 20 at once
assert t["active"] == 0, t
PY
pass

# ---- --check explains what is wrong ----
# A taken TFTP port (dnsmasq's TFTP server on 69), a boot file missing, no install.
ip netns exec "$P-s" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --enable-tftp \
  --tftp-root="$tmp/tftp" --listen-address=10.77.0.1 --bind-interfaces > /dev/null 2>&1 &
pids+=($!)
sleep 0.5
cat > "$tmp/check.json" <<JSON
{
  "dhcp": {"interfaces": ["eth0"]},
  "tftp": {"root": "$tmp/tftp", "install_boot_files": false, "port": 69, "address": "10.77.0.1"},
  "http": {"root": "$tmp/http", "port": 80}
}
JSON
if lab_exec "$P-s" "$shoal" boot -c "$tmp/check.json" --check > "$tmp/check.out" 2>&1; then
  fail "--check passed with problems: $(cat "$tmp/check.out")"
fi
grep -q "problem: tftp: port 69/udp on 10.77.0.1 is taken" "$tmp/check.out" || fail "no taken TFTP port: $(cat "$tmp/check.out")"
grep -q "problem: tftp: boot file undionly.kpxe is not in" "$tmp/check.out" || fail "no missing boot file"
grep -q "problem: http: port 80/tcp on 0.0.0.0 is taken" "$tmp/check.out" || fail "no taken HTTP port"
pass
# An interface without an address.
ip -n "$P-s" link add dummy0 type veth peer name dummy1
ip -n "$P-s" link set dummy0 up
if lab_exec "$P-s" "$shoal" boot -c "$tmp/check.json" -i dummy0 --check > "$tmp/check2.out" 2>&1; then
  fail "--check passed with an interface without an address"
fi
grep -qi "dummy0.*address" "$tmp/check2.out" || fail "no word on dummy0's address: $(cat "$tmp/check2.out")"
pass

echo "PASS: $checks checks"
