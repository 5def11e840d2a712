#!/usr/bin/env bash
# The control plane end to end in namespaces: shoald (store, REST API, boot services,
# tasks service with the engine's sender in-process) on a bridge with 4 PCs running
# `shoal agent`. A real ext4 (mkfs.ext4 -d, in a partitioned disk file) is captured into
# the image store with `shoal image capture`; the PCs register, an admin logs in and makes
# a multicast deploy task for each through the REST API; one session carries the image to
# all of them while one PC's link drops 5% of its UDP (nftables); every disk passes e2fsck
# and holds the same files; GET /api/v1/tasks shows each task complete with its bytes and
# rate. Then a second deploy during which shoald is killed (SIGKILL) and started again:
# the tasks' state is intact and the deploy still finishes.
# Usage: tasks_deploy_test.sh SHOAL SHOALD SOURCE_DIR      (root; exits 77 otherwise)
set -euo pipefail
shoal=$(realpath "$1")
shoald=$(realpath "$2")
source "$3/tools/netlab.sh"
lab_need_root
for t in nft mkfs.ext4 e2fsck debugfs sfdisk curl python3; do
  command -v $t >/dev/null || { echo "SKIP: $t missing" >&2; exit 77; }
done

pcs=4
prefix=shoal-k$$
work=$(mktemp -d /tmp/shoal-tasks.XXXXXX)
lab_up "$prefix" "$pcs"
shoald_pid=
cleanup() {
  [ -n "${KEEP_WORK:-}" ] && { echo "work kept in $work"; cp -r "$work" /tmp/tasks-kept 2>/dev/null; }
  [ -n "$shoald_pid" ] && kill -9 "$shoald_pid" 2>/dev/null || true
  lab_down "$prefix"
  rm -rf "$work"
}
trap cleanup EXIT
server=http://10.77.0.1:8080
fail() { echo "FAIL: $*" >&2; echo "--- shoald log (tail)"; tail -30 "$work"/shoald*.log >&2 || true; exit 1; }
pass=0
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }
in_s() { ip netns exec "$prefix-s" "$@"; }
# The admin talks to shoald from its own namespace (the host namespace has no route to it).
hcurl() { ip netns exec "$prefix-s" curl "$@"; }

# --- the image: a real ext4 with real files, captured into the store
ref=$work/ref
mkdir -p "$ref/deep/er" "$ref/with space"
cp -r /usr/share/doc/bash "$ref/"
head -c 12000000 /dev/urandom > "$ref/random.bin"
seq 1 300000 > "$ref/deep/er/numbers.txt"
echo hello > "$ref/with space/file one.txt"
truncate -s 64M "$work/src.img"
echo 'start=2048, type=83' | sfdisk -q "$work/src.img"
mkfs.ext4 -q -F -d "$ref" -E offset=1048576 "$work/src.img" 60M
"$shoal" image capture --store "$work/store" --disk "$work/src.img" --name lab-ext4 \
  --type multipart --progress none > "$work/capture.log" 2>&1 || { cat "$work/capture.log"; fail "capture"; }
ok "captured a 64 MiB disk with an ext4 of $(du -sh "$ref" | cut -f1) into the store"

# --- shoald
mkdir -p "$work/clientos" "$work/web"
cat > "$work/shoald.json" <<JSON
{
  "store": "sqlite://$work/shoald.db",
  "images": "$work/store",
  "clientos": "$work/clientos",
  "web": "$work/web",
  "admin": {"user": "admin", "password": "lab-admin-password"},
  "boot": {"http": {"port": 8080},
           "tftp": {"root": "$work/tftp"},
           "dhcp": {"enabled": true, "mode": "proxy", "interfaces": ["eth0"],
                    "leases_path": "$work/dhcp.leases"}},
  "tasks": {"interface": "eth0", "session_secret_file": "$work/session-secret",
            "rate_bps": 24000000, "wait_max_s": 120, "gather_s": 5, "finish_grace_s": 30,
            "resume_wait_s": 15, "tick_ms": 200}
}
JSON
start_shoald() {
  # ip netns exec execs shoald: $! is shoald itself (a shell function would add a subshell)
  ip netns exec "$prefix-s" "$shoald" --config "$work/shoald.json" >> "$work/shoald.log" 2>&1 &
  shoald_pid=$!
  for _ in $(seq 1 100); do
    hcurl -sf -o /dev/null "$server/boot" 2>/dev/null && return 0
    kill -0 "$shoald_pid" 2>/dev/null || fail "shoald exited at start"
    sleep 0.1
  done
  fail "shoald did not answer within 10 s"
}
start_shoald
ok "shoald serves at $server"

token=$(hcurl -sf -X POST "$server/api/v1/login" -d '{"user":"admin","password":"lab-admin-password"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || fail "login"
api() {  # api METHOD PATH [BODY]
  hcurl -sS -X "$1" -H "Authorization: Bearer $token" ${3:+-d "$3"} "$server/api/v1$2"
}
image_id=$(api POST /images '{"name":"lab-ext4","kind":"multi_partition_single_disk"}' |
           python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || fail "image record"

# --- round 1: 4 PCs, one of them losing 5% of its UDP
run_agents() {  # run_agents ROUND
  local round=$1 i
  agent_pids=()
  for i in $(seq 1 $pcs); do
    rm -f "$work/disk$i.$round"
    timeout 300 ip netns exec "$prefix-r$i" "$shoal" agent --server "$server" \
      --mac "52:54:00:00:01:0$i" --name "pc$i" --target "$work/disk$i.$round" --interface eth0 \
      --memory 64M --wait-task 120s --join-timeout 180s --no-power \
      > "$work/agent$i.$round.log" 2>&1 &
    agent_pids+=($!)
  done
}
host_ids() {
  api GET "/hosts?limit=100" | python3 -c '
import json, sys
for h in json.load(sys.stdin)["items"]:
    if h["mac"].startswith("52:54:00:00:01:"): print(h["id"])'
}
make_tasks() {
  local h
  for h in $(host_ids); do
    api POST /tasks "{\"kind\":\"multicast\",\"host_id\":$h,\"image_id\":$image_id}" > "$work/task.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d.get("state")=="queued" else 1)' \
      "$work/task.json" || { cat "$work/task.json"; fail "task for host $h"; }
  done
}
wait_agents() {  # wait_agents ROUND
  local round=$1 rc=0 i=1 p
  for p in "${agent_pids[@]}"; do
    if ! wait "$p"; then
      echo "  agent $i failed:"; tail -5 "$work/agent$i.$round.log" | sed 's/^/    /'; rc=1
    fi
    i=$((i + 1))
  done
  return $rc
}
check_disks() {  # check_disks ROUND
  local round=$1 i
  for i in $(seq 1 $pcs); do
    local d=$work/disk$i.$round
    e2fsck -fn "$d?offset=1048576" > "$work/fsck$i.log" 2>&1 || { cat "$work/fsck$i.log"; fail "e2fsck of PC $i's disk (round $round)"; }
    rm -rf "$work/got"; mkdir "$work/got"
    debugfs -R "rdump / $work/got" "$d?offset=1048576" > /dev/null 2>&1
    diff -r "$ref" "$work/got" -x lost+found > /dev/null || fail "PC $i's files differ from the source (round $round)"
  done
}
check_tasks() {  # check_tasks EXPECTED_COUNT: every 52:54:00:00:01:* task complete, with figures
  api GET "/tasks?limit=100" > "$work/tasks.json"
  python3 - "$work/tasks.json" "$1" <<'PY' || fail "tasks as the API shows them"
import json, sys
tasks = json.load(open(sys.argv[1]))["items"]
want = int(sys.argv[2])
done = [t for t in tasks if t["state"] == "complete"]
bad = [t for t in tasks if t["state"] != "complete"]
for t in bad:
    print("  task", t["id"], t["state"], t.get("progress"), file=sys.stderr)
assert len(done) == want and not bad, f"{len(done)} complete of {want}"
for t in done:
    p = t["progress"]
    assert p["bytes_done"] > 0 and p["bytes_done"] == p["bytes_total"], p
    assert p["rate_Bps"] > 0, p
    assert p["percent"] == 100, p
    assert t["session_id"] is not None
    print(f"  task {t['id']}: {p['bytes_done']} bytes at {p['rate_Bps'] / 1e6:.1f} MB/s, session {t['session_id']}")
print("sessions:", len({t["session_id"] for t in done}))
PY
}

lab_loss "$prefix-r4" 50
run_agents 1
# the PCs register themselves
for _ in $(seq 1 100); do [ "$(host_ids | wc -l)" -eq $pcs ] && break; sleep 0.1; done
[ "$(host_ids | wc -l)" -eq $pcs ] || fail "$pcs PCs did not register"
ok "$pcs PCs registered (pending hosts)"
start=$(date +%s.%N)
make_tasks
wait_agents 1 || fail "round 1: agents"
secs=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
ok "round 1: every agent reports its image written and verified (${secs}s from the tasks' creation; PC 4 at 5% loss)"
check_disks 1
ok "round 1: every disk passes e2fsck -fn and holds the source's files"
check_tasks $pcs | tee "$work/check1.log"
grep -q "sessions: 1" "$work/check1.log" || fail "round 1 did not run as one session"
ok "round 1: GET /api/v1/tasks shows every task complete with bytes and rate, one session"
ip netns exec "$prefix-r4" nft delete table inet shoal_loss

# --- round 2: shoald killed mid-session and started again
run_agents 2
sleep 2
make_tasks
# wait until the session is sending (some bytes written, none finished)
for _ in $(seq 1 300); do
  api GET "/tasks?state=in_progress&limit=100" > "$work/mid.json"
  n=$(python3 -c 'import json,sys; print(sum(1 for t in json.load(open(sys.argv[1]))["items"] if 0 < t["progress"]["bytes_done"]))' "$work/mid.json")
  [ "$n" -ge 1 ] && break
  sleep 0.1
done
[ "$n" -ge 1 ] || fail "round 2: no progress before the kill"
api GET "/tasks?limit=100" > "$work/before.json"
kill -9 "$shoald_pid"; wait "$shoald_pid" 2>/dev/null || true
! ip netns pids "$prefix-s" | grep -q . || fail "shoald still runs after SIGKILL"
ok "round 2: shoald killed (SIGKILL) with $n task(s) in progress"
sleep 1
start_shoald
api GET "/tasks?limit=100" > "$work/after.json"
python3 - "$work/before.json" "$work/after.json" <<'PY' || fail "tasks' state after the restart"
import json, sys
before = {t["id"]: t for t in json.load(open(sys.argv[1]))["items"]}
after = {t["id"]: t for t in json.load(open(sys.argv[2]))["items"]}
assert before.keys() == after.keys()
for i, b in before.items():
    a = after[i]
    assert a["state"] == b["state"] or a["state"] in ("in_progress", "complete"), (b, a)
    assert a["session_id"] == b["session_id"]
    assert a["progress"]["bytes_done"] >= b["progress"]["bytes_done"]
PY
ok "round 2: after the restart every task keeps its state, session and progress"
wait_agents 2 || fail "round 2: agents"
grep -q "resuming" "$work"/agent*.2.log || fail "round 2: no agent rejoined with --resume"
ok "round 2: the agents rejoined the restarted session (resume) and finished"
check_disks 2
ok "round 2: every disk passes e2fsck -fn and holds the source's files"
check_tasks $((pcs * 2)) > "$work/check2.log" || fail "round 2 tasks"
ok "round 2: all $((pcs * 2)) tasks complete with their figures"
grep -q "was running when shoald stopped" "$work/shoald.log" || fail "shoald did not resume the session"
echo "tasks_deploy: $pass checks passed"
