#!/usr/bin/env bash
# Real multicast between network namespaces: one sender, 8 receivers on a bridge.
# Cases: no loss; 1% and 5% random loss at every receiver (nftables); one receiver at 5%
# while the rest see none; one receiver whose disk takes only 20 MB/s; the sender at a
# 1 Gbit/s link (tc tbf). Every receiver must end bit-identical to the source.
# Usage: transport_test.sh SHOAL_BINARY SOURCE_DIR
set -euo pipefail
shoal=$1
source "$2/tools/netlab.sh"
lab_need_root
command -v nft >/dev/null || { echo "SKIP: nft missing" >&2; exit 77; }

receivers=8
prefix=shoal-t$$
work=$(mktemp -d /tmp/shoal-netns.XXXXXX)
lab_up "$prefix" "$receivers"
trap 'lab_down "$prefix"; rm -rf "$work"' EXIT

head -c 32 /dev/urandom > "$work/key"
# 48 MiB: random, text-like and zero thirds, so raw and zstd chunks both travel.
python3 - "$work/image" <<'PY'
import os, sys
third = 16 << 20
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(third))
    f.write((b"lab image text " * (third // 15 + 1))[:third])
    f.write(b"\0" * third)
PY
want=$(sha256sum < "$work/image" | cut -d' ' -f1)
failures=0

run_case() {
  local name=$1 rate=$2; shift 2
  local extra_recv=("$@")
  local i pids=()
  for i in $(seq 1 $receivers); do
    rm -f "$work/disk$i"
    local args=()
    if [ "${extra_recv[$((i - 1))]:-}" != "" ] && [ "${extra_recv[$((i - 1))]}" != "-" ]; then
      read -r -a args <<< "${extra_recv[$((i - 1))]}"
    fi
    timeout 120 ip netns exec "$prefix-r$i" "$shoal" recv "$work/disk$i" -i eth0 \
      --key-file "$work/key" --json "${args[@]}" > "$work/recv$i.json" 2> "$work/recv$i.log" &
    pids+=($!)
  done
  local start=$(date +%s.%N)
  timeout 120 ip netns exec "$prefix-s" "$shoal" send "$work/image" -i eth0 --key-file "$work/key" \
    --receivers $receivers --wait 30s --rate "$rate" --idle-timeout 3s --json \
    > "$work/send.json" 2> "$work/send.log" || true
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  local ok=0
  for i in $(seq 1 $receivers); do
    if [ -f "$work/disk$i" ] && [ "$(sha256sum < "$work/disk$i" | cut -d' ' -f1)" = "$want" ]; then
      ok=$((ok + 1))
    else
      echo "  receiver $i differs:"; tail -2 "$work/recv$i.log" | sed 's/^/    /'
    fi
  done
  local secs=$(python3 -c "import json;print(round(json.load(open('$work/send.json'))['seconds'],2))" 2>/dev/null || echo "?")
  local repairs=$(python3 -c "import json;print(json.load(open('$work/send.json'))['repair_packets'])" 2>/dev/null || echo "?")
  if [ "$ok" -eq "$receivers" ] && [ "$rc" -eq 0 ]; then
    echo "ok   $name: $ok/$receivers identical, ${secs}s, $repairs repair packets"
  else
    echo "FAIL $name: $ok/$receivers identical (receivers' exit: $rc)"
    tail -5 "$work/send.log" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

clear_loss() {
  local i
  for i in $(seq 1 $receivers); do
    ip netns exec "$prefix-r$i" nft delete table inet shoal_loss 2>/dev/null || true
  done
}

run_case "no loss" 800M
for permille in 10 50; do
  for i in $(seq 1 $receivers); do lab_loss "$prefix-r$i" $permille; done
  run_case "$((permille / 10))% loss at every receiver" 800M
  clear_loss
done
lab_loss "$prefix-r3" 50
run_case "one receiver at 5% loss" 800M
clear_loss
slow=(- - - - --throttle-disk=20M - - -)
run_case "one receiver with a 20 MB/s disk" 800M "${slow[@]}"
lab_rate "$prefix-s" 1gbit
run_case "sender on a 1 Gbit/s link" 950M
exit $((failures > 0))
