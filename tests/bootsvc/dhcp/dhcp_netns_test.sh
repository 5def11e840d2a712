#!/usr/bin/env bash
# Real DHCP clients against shoal's DHCP server in network namespaces on a bridge.
#  full mode: busybox udhcpc and ISC dhclient get leases from the pool; a reservation gives
#    its address and hostname; PXE and iPXE clients get their boot file or script URL; the
#    same client gets the same address after a server restart (lease file); junk packets
#    are counted and dropped while service goes on.
#  proxy mode beside dnsmasq (the site's server): clients get addresses from dnsmasq only;
#    a PXE client gets its boot file from shoal, by offer on 67 and by ACK on 4011.
# Usage: dhcp_netns_test.sh DHCP_SERVE SOURCE_DIR
set -euo pipefail
serve=$1
src=$2
source "$src/tools/netlab.sh"
lab_need_root
for tool in udhcpc dhclient dnsmasq python3; do
  command -v $tool >/dev/null || { echo "SKIP: $tool missing" >&2; exit 77; }
done

prefix=shoal-d$$
work=$(mktemp -d /tmp/shoal-dhcp.XXXXXX)
pxe_client=$src/tests/bootsvc/dhcp/pxe_client.py
LAB_NO_TRAP=1
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  lab_down "$prefix"
  # The clients and the site server's namespace are ours too (lab_down knows br, s, rN).
  local n
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(c[0-9]+|site)$"); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
lab_up "$prefix" 0

# A client namespace on the bridge with a fixed MAC and no address.
add_client() {
  local name=$1 mac=$2 ns="$prefix-$1"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "v$name$$" type veth peer name eth0 netns "$ns"
  ip link set "v$name$$" netns "$prefix-br"
  ip -n "$prefix-br" link set "v$name$$" master br0 up
  ip -n "$ns" link set eth0 address "$mac"
  ip -n "$ns" link set eth0 up
}
add_client c1 52:54:00:00:00:01
add_client c2 52:54:00:00:00:02
add_client c3 52:54:00:00:00:03
add_client c4 52:54:00:00:00:04
failures=0
check() {  # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

# udhcpc's script writes what it was given, one KEY=VALUE a line, per event.
cat > "$work/udhcpc.sh" <<'SH'
#!/bin/sh
[ "$1" = bound ] || exit 0
{ echo "ip=$ip"; echo "subnet=$subnet"; echo "router=$router"; echo "serverid=$serverid";
  echo "hostname=$hostname"; echo "boot_file=$boot_file"; echo "siaddr=$siaddr"; } > "$OUT"
SH
chmod +x "$work/udhcpc.sh"
udhcpc_run() {  # udhcpc_run CLIENT OUTFILE [udhcpc args...]
  local c=$1 out=$2; shift 2
  rm -f "$out"
  OUT=$out timeout 20 ip netns exec "$prefix-$c" udhcpc -i eth0 -f -q -n -t 4 -T 1 -A 1 \
    -s "$work/udhcpc.sh" "$@" >> "$work/udhcpc.log" 2>&1 || true
}
val() { sed -n "s/^$2=//p" "$1" 2>/dev/null; }

start_server() {
  timeout 300 ip netns exec "$prefix-s" "$serve" "$@" --log debug > "$work/stats.json" 2> "$work/server.log" &
  server_pid=$!
  for _ in $(seq 50); do grep -q "ready" "$work/server.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not start:"; cat "$work/server.log"; exit 1
}
stop_server() {
  local rc=0
  kill -TERM "$server_pid"; wait "$server_pid" || rc=$?; server_pid=
  check "the server stops cleanly on SIGTERM (exit $rc)" test "$rc" -eq 0
  check "no sanitizer report in the server's log" bash -c "! grep -qE 'runtime error|Sanitizer' '$work/server.log'"
}

# ---- full mode -------------------------------------------------------------------------
full_args=(--mode full -i eth0 --pool 10.77.2.10-10.77.2.50 --router 10.77.0.1
           --reserve 52:54:00:00:00:02=10.77.2.200=pc-two --leases "$work/leases")
start_server "${full_args[@]}"

udhcpc_run c1 "$work/c1"
ip1=$(val "$work/c1" ip)
in_pool() { python3 -c "import ipaddress,sys; a=ipaddress.ip_address(sys.argv[1]); sys.exit(0 if ipaddress.ip_address('10.77.2.10')<=a<=ipaddress.ip_address('10.77.2.50') else 1)" "$1" 2>/dev/null; }
check "udhcpc gets an address from the pool ($ip1)" in_pool "$ip1"
check "udhcpc gets mask, router and server id" test "$(val "$work/c1" subnet)/$(val "$work/c1" router)/$(val "$work/c1" serverid)" = "255.255.0.0/10.77.0.1/10.77.0.1"

udhcpc_run c2 "$work/c2"
check "reservation gives its address and hostname" test "$(val "$work/c2" ip)/$(val "$work/c2" hostname)" = "10.77.2.200/pc-two"

# dhclient with its own lease file, script and pid file.
# dhclient runs its script with a clean environment: the output path is written into it.
cat > "$work/dhclient.sh" <<SH
#!/bin/sh
case "\$reason" in BOUND|RENEW|REBOOT) echo "\$new_ip_address \$new_subnet_mask \$new_dhcp_server_identifier" > "$work/dhclient.out";; esac
exit 0
SH
chmod +x "$work/dhclient.sh"
echo 'timeout 15; retry 1;' > "$work/dhclient.conf"
timeout 20 ip netns exec "$prefix-c3" dhclient -1 -v \
  -cf "$work/dhclient.conf" -lf "$work/dhclient.leases" -pf "$work/dhclient.pid" \
  -sf "$work/dhclient.sh" eth0 >> "$work/dhclient.log" 2>&1 || true
read -r ip3 mask3 sid3 < "$work/dhclient.out" || true
check "dhclient gets an address from the pool (${ip3:-none})" in_pool "${ip3:-}"
check "dhclient's lease file holds it" grep -q "fixed-address ${ip3:-x};" "$work/dhclient.leases"
check "dhclient saw mask and server id" test "${mask3:-}/${sid3:-}" = "255.255.0.0/10.77.0.1"
[ -f "$work/dhclient.pid" ] && kill "$(cat "$work/dhclient.pid")" 2>/dev/null || true

# PXE and iPXE clients (udhcpc sending options 60, 93 and 77).
udhcpc_run c4 "$work/c4" -V "PXEClient:Arch:00000:UNDI:002001" -x 0x5d:0000
check "BIOS PXE client gets undionly.kpxe from siaddr 10.77.0.1" test "$(val "$work/c4" boot_file)@$(val "$work/c4" siaddr)" = "undionly.kpxe@10.77.0.1"
udhcpc_run c4 "$work/c4" -V "PXEClient:Arch:00007:UNDI:003016" -x 0x5d:0007
check "UEFI x64 PXE client gets ipxe.efi" test "$(val "$work/c4" boot_file)" = "ipxe.efi"
udhcpc_run c4 "$work/c4" -V "PXEClient:Arch:00000:UNDI:002001" -x 0x5d:0000 -x 0x4d:69505845
check "iPXE gets the script URL, not undionly.kpxe again" test "$(val "$work/c4" boot_file)" = "http://10.77.0.1:8080/boot?mac=52:54:00:00:00:04"

# Junk to port 67: counted, dropped, and the server still answers.
ip -n "$prefix-c1" addr add 10.77.9.1/16 brd + dev eth0
ip netns exec "$prefix-c1" python3 - <<'PY'
import socket, os, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
good = bytearray(struct.pack("!BBBBI", 1, 1, 6, 0, 7) + b"\0" * 228 + b"\x63\x82\x53\x63")
for junk in [b"", b"\x01" * 10, bytes(good) + b"\x35\x01", bytes(good) + b"\x3c\xff" + b"x" * 10,
             os.urandom(300), bytes(good) + b"\x35\x01\x01" + b"\x00" * 3000, bytes(good[:100])]:
    s.sendto(junk, ("10.77.0.1", 67))
PY
# A flood of DISCOVERs from 2000 made-up MACs against a pool of 41: offers are taken back,
# leases are not, and a real client still gets its lease at once.
ip netns exec "$prefix-c1" python3 - <<'PY'
import os, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
for i in range(2000):
    mac = b"\x02\xff" + os.urandom(4)
    p = struct.pack("!BBBBIHH", 1, 1, 6, 0, i, 0, 0x8000) + b"\0" * 16 + mac + b"\0" * 202
    s.sendto(p + b"\x63\x82\x53\x63\x35\x01\x01\xff", ("255.255.255.255", 67))
PY
ip -n "$prefix-c1" addr flush dev eth0
ip -n "$prefix-c4" link set eth0 address 52:54:00:00:00:0a
udhcpc_run c4 "$work/c4f"
ip -n "$prefix-c4" link set eth0 address 52:54:00:00:00:04
check "after a DISCOVER flood, a new client still gets a lease ($(val "$work/c4f" ip))" in_pool "$(val "$work/c4f" ip)"
sleep 0.3
stop_server
check "the flood never found the pool exhausted" python3 -c "import json,sys; s=json.load(open('$work/stats.json')); print(s) if s['pool_exhausted'] or s['discovers']<1900 else None; sys.exit(0 if s['pool_exhausted']==0 and s['discovers']>=1900 else 1)"
check "the lease file names c1's address" grep -q "^bind 52:54:00:00:00:01 $ip1 " "$work/leases"
malformed=$(python3 -c "import json;print(json.load(open('$work/stats.json'))['malformed'])")
check "junk packets counted as malformed ($malformed)" test "$malformed" -ge 6
check "junk logged with a reason" grep -q "bad DHCP packet from 10.77.9.1" "$work/server.log"

# Restart: the same client gets the same address back (a new DISCOVER, no hint from it).
start_server "${full_args[@]}"
# A newcomer first: were the leases forgotten, it would be handed c1's address.
ip -n "$prefix-c2" link set eth0 address 52:54:00:00:00:09
udhcpc_run c2 "$work/c9"
ip9=$(val "$work/c9" ip)
check "after a restart, a new MAC gets a new address ($ip9)" test -n "$ip9" -a "$ip9" != "$ip1" -a "$ip9" != "${ip3:-x}"
udhcpc_run c1 "$work/c1b"
check "after a restart, c1 gets $ip1 again" test "$(val "$work/c1b" ip)" = "$ip1"
udhcpc_run c3 "$work/c3b"
check "after a restart, dhclient's MAC gets ${ip3:-?} again" test "$(val "$work/c3b" ip)" = "${ip3:-x}"
stop_server

# ---- proxy mode beside dnsmasq ---------------------------------------------------------
ip -n "$prefix-s" addr add 10.77.0.2/16 dev eth0
ip netns add "$prefix-site"
ip -n "$prefix-site" link set lo up
ip link add "vsite$$" type veth peer name eth0 netns "$prefix-site"
ip link set "vsite$$" netns "$prefix-br"
ip -n "$prefix-br" link set "vsite$$" master br0 up
ip -n "$prefix-site" addr add 10.77.0.3/16 brd + dev eth0
ip -n "$prefix-site" link set eth0 up
timeout 200 ip netns exec "$prefix-site" dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
  --interface=eth0 --bind-interfaces --dhcp-range=10.77.3.10,10.77.3.50,255.255.0.0,1h \
  --dhcp-leasefile="$work/dnsmasq.leases" --no-ping --log-dhcp > "$work/dnsmasq.log" 2>&1 &
dnsmasq_pid=$!
start_server --mode proxy -i eth0
sleep 0.3
for c in c1 c2 c3 c4; do ip -n "$prefix-$c" addr flush dev eth0; done

# A second server on the same interface is refused, and says why.
rc=0; timeout 10 ip netns exec "$prefix-s" "$serve" --mode proxy -i eth0 > /dev/null 2> "$work/second.log" || rc=$?
check "a second server on port 67 fails to start" test "$rc" -eq 1
check "--check style diagnosis names the taken port" grep -q "check: dhcp: UDP port 67 on eth0 is taken" "$work/second.log"
rc=0; timeout 10 ip netns exec "$prefix-s" "$serve" --mode proxy -i nosuch0 > /dev/null 2> "$work/nosuch.log" || rc=$?
check "a missing interface is named" grep -q "interface nosuch0 does not exist" "$work/nosuch.log"
timeout 20 ip netns exec "$prefix-c1" python3 "$pxe_client" --mac 52:54:00:00:00:01 --arch 0 > "$work/pxe1.json" || true
pxe() { python3 -c "import json,sys; r=json.load(open('$1')); print(eval(sys.argv[1]))" "$2" 2>/dev/null; }
check "PXE client: an address offer from dnsmasq" test "$(pxe "$work/pxe1.json" "[o['server_id'] for o in r['offers'] if o['yiaddr']!='0.0.0.0']")" = "['10.77.0.3']"
check "PXE client: a proxy offer from shoal, no address, undionly.kpxe" \
  test "$(pxe "$work/pxe1.json" "[(o['server_id'],o['file'],o['siaddr'],o['vendor_class'],o['vendor_options']) for o in r['offers'] if o['yiaddr']=='0.0.0.0']")" = "[('10.77.0.1', 'undionly.kpxe', '10.77.0.1', 'PXEClient', '060108ff')]"
check "PXE client: its UUID echoed" test "$(pxe "$work/pxe1.json" "[o['uuid']==r['uuid_sent'] for o in r['offers'] if o['yiaddr']=='0.0.0.0']")" = "[True]"
check "PXE client: dnsmasq ACKs its address" test "$(pxe "$work/pxe1.json" "r['ack']['yiaddr'].startswith('10.77.3.')")" = "True"
check "PXE client: the 4011 boot server ACK names undionly.kpxe" test "$(pxe "$work/pxe1.json" "(r['boot_ack']['type'],r['boot_ack']['file'],r['boot_ack']['from'])")" = "(5, 'undionly.kpxe', '10.77.0.1')"

timeout 20 ip netns exec "$prefix-c2" python3 "$pxe_client" --mac 52:54:00:00:00:02 --arch 7 > "$work/pxe2.json" || true
check "UEFI PXE client: ipxe.efi by offer and by 4011" test "$(pxe "$work/pxe2.json" "([o['file'] for o in r['offers'] if o['yiaddr']=='0.0.0.0'], r['boot_ack']['file'])")" = "(['ipxe.efi'], 'ipxe.efi')"
timeout 20 ip netns exec "$prefix-c2" python3 "$pxe_client" --mac 52:54:00:00:00:02 --arch 0 --user-class iPXE --no-request > "$work/pxe3.json" || true
check "iPXE beside dnsmasq gets the script URL from shoal" test "$(pxe "$work/pxe3.json" "[o['file'] for o in r['offers'] if o['yiaddr']=='0.0.0.0']")" = "['http://10.77.0.1:8080/boot?mac=52:54:00:00:00:02']"

# dhclient as a PXE client: its address comes from dnsmasq, shoal sends only a proxy offer.
# dhclient is no PXE client: it takes the first offer, and one run in several the first is
# shoal's ProxyDHCP offer (no address). A PXE ROM knows better; dhclient is told to require
# what an address offer carries.
cat > "$work/dhclient-pxe.conf" <<'CONF'
timeout 15; retry 1;
require subnet-mask;
send vendor-class-identifier "PXEClient:Arch:00000:UNDI:002001";
send user-class "shoal-test";
CONF
rm -f "$work/dhclient.out"
timeout 20 ip netns exec "$prefix-c3" dhclient -1 -v \
  -cf "$work/dhclient-pxe.conf" -lf "$work/dhclient-pxe.leases" -pf "$work/dhclient-pxe.pid" \
  -sf "$work/dhclient.sh" eth0 >> "$work/dhclient.log" 2>&1 || true
[ -f "$work/dhclient-pxe.pid" ] && kill "$(cat "$work/dhclient-pxe.pid")" 2>/dev/null || true
read -r ip3p _ sid3p < "$work/dhclient.out" || true
check "dhclient (PXE vendor class) bound ${ip3p:-none} from dnsmasq" test "${ip3p:-}/${sid3p:-}" != "/" -a "${sid3p:-}" = "10.77.0.3"
check "shoal sent dhclient a proxy offer" grep -q "52:54:00:00:00:03 DISCOVER on eth0:67 arch 0 -> proxy OFFER 'undionly.kpxe'" "$work/server.log"
# A plain client: dnsmasq's business only.
udhcpc_run c4 "$work/c4p"
check "plain udhcpc gets its address from dnsmasq" test "$(val "$work/c4p" serverid)" = "10.77.0.3"
check "shoal left the plain client alone" grep -q "52:54:00:00:00:04 DISCOVER on eth0:67 is not a PXE request" "$work/server.log"
stop_server
kill "$dnsmasq_pid" 2>/dev/null || true
wait "$dnsmasq_pid" 2>/dev/null || true
check "shoal handed out no address in proxy mode" python3 -c "import json,sys; s=json.load(open('$work/stats.json')); sys.exit(0 if s['offers']==0 and s['acks']==0 and s['proxy_offers']>=4 and s['proxy_acks']>=2 else 1)"

if [ "$failures" -ne 0 ]; then
  echo "--- server log (tail)"; tail -30 "$work/server.log"
  echo "--- udhcpc"; tail -10 "$work/udhcpc.log"
  echo "--- dhclient"; tail -10 "$work/dhclient.log"
  echo "--- dnsmasq"; tail -10 "$work/dnsmasq.log" 2>/dev/null
  exit 1
fi
echo "all DHCP namespace checks passed"
