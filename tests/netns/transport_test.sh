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
ip netns exec "$prefix-s" tc qdisc del dev eth0 root

# Faults. The sender killed mid-stream: every receiver stops, in bounded time, with a
# clear error and a non-zero exit; none reports done.
fault_recv() {  # fault_recv I SENDER_TIMEOUT [ARGS] -> starts receiver I in the background, pid in $!
  local i=$1 t=$2; shift 2
  timeout 60 ip netns exec "$prefix-r$i" "$shoal" recv "$work/disk$i" -i eth0 --key-file "$work/key" \
    --timeout "$t" "$@" > /dev/null 2> "$work/recv$i.log" &
}
kill_in() {  # every process of a namespace: a host losing power
  ip netns pids "$1" | xargs -r kill -9
}
pids=()
for i in 1 2 3 4; do rm -f "$work/disk$i"; fault_recv $i 2s; pids+=($!); done
timeout 60 ip netns exec "$prefix-s" "$shoal" send "$work/image" -i eth0 --key-file "$work/key" \
  -n 4 --wait 10s --rate 100M --level 0 2> "$work/send.log" &
sender=$!
sleep 1.5
kill_in "$prefix-s"
wait $sender 2>/dev/null || true
killed_at=$(date +%s)
bad=0
for i in 1 2 3 4; do
  if wait "${pids[$((i - 1))]}"; then bad=1; echo "  receiver $i exited 0 after the sender died"; fi
  grep -q "no packet from the sender" "$work/recv$i.log" || { bad=1; tail -2 "$work/recv$i.log"; }
  grep -q "NOT a complete copy" "$work/recv$i.log" || bad=1
done
elapsed=$(( $(date +%s) - killed_at ))
if [ $bad -eq 0 ] && [ $elapsed -le 10 ]; then
  echo "ok   sender killed: all 4 receivers stopped with an error within ${elapsed}s"
else
  echo "FAIL sender killed: receivers did not all stop with a clear error (${elapsed}s)"
  failures=$((failures + 1))
fi

# A receiver killed mid-stream and started again with --resume: it keeps the verified
# chunks its first run wrote, joins as a late joiner for the rest and ends identical; the
# others are not held.
pids=()
for i in 1 2 3 4; do rm -f "$work/disk$i"; fault_recv $i 5s; pids+=($!); done
timeout 60 ip netns exec "$prefix-s" "$shoal" send "$work/image" -i eth0 --key-file "$work/key" \
  -n 4 --wait 10s --rate 150M --level 0 --idle-timeout 2s 2> "$work/send.log" &
sender=$!
sleep 1.2
kill_in "$prefix-r2"
wait "${pids[1]}" 2>/dev/null || true
fault_recv 2 5s --resume
pids[1]=$!
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
wait $sender || true
ok=0
for i in 1 2 3 4; do
  [ "$(sha256sum < "$work/disk$i" | cut -d' ' -f1)" = "$want" ] && ok=$((ok + 1))
done
resumed=$(grep -o "resumed: [0-9]* chunks ([^)]*)" "$work/recv2.log" || true)
if [ $ok -eq 4 ] && [ $rc -eq 0 ] && [ -n "$resumed" ]; then
  echo "ok   receiver killed and restarted: 4/4 identical; $resumed kept from its first run"
else
  echo "FAIL receiver killed and restarted: $ok/4 identical"; tail -3 "$work/recv2.log"
  failures=$((failures + 1))
fi

# A target too small (an 8 MiB tmpfs for a 48 MiB image): a clear error before any data
# moves, while the other receivers complete.
pids=()
for i in 1 2; do rm -f "$work/disk$i"; fault_recv $i 2s; pids+=($!); done
timeout 60 ip netns exec "$prefix-r3" sh -c "mkdir -p /tmp/shoal-full-$$ && mount -t tmpfs -o size=8m tmpfs /tmp/shoal-full-$$ && \
  exec $shoal recv /tmp/shoal-full-$$/disk -i eth0 --key-file $work/key --timeout 2s" > /dev/null 2> "$work/recv3.log" &
full=$!
timeout 60 ip netns exec "$prefix-s" "$shoal" send "$work/image" -i eth0 --key-file "$work/key" \
  -n 3 --wait 10s --rate 400M --idle-timeout 2s 2> "$work/send.log" || true
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
if wait $full; then rc=1; fi
rmdir /tmp/shoal-full-$$ 2>/dev/null || true
if [ $rc -eq 0 ] && grep -q "No space left" "$work/recv3.log" && \
   [ "$(sha256sum < "$work/disk1" | cut -d' ' -f1)" = "$want" ]; then
  echo "ok   full disk: a clear error ($(grep -o 'reserving.*' "$work/recv3.log" | head -1)); the others complete"
else
  echo "FAIL full disk"; tail -3 "$work/recv3.log"
  failures=$((failures + 1))
fi
exit $((failures > 0))
