#!/usr/bin/env bash
# THE end-to-end test of the boot services: QEMU virtual machines (TCG) PXE-boot from
# `shoal boot` on a bridge inside network namespaces, through their firmware's own network
# boot: DHCP, TFTP of the iPXE binary (UEFI; the BIOS ROM is iPXE already and goes straight
# to HTTP), the HTTP script for their MAC, then the client OS (Debian's kernel and a
# busybox initramfs, tools/mkclientos) whose /init prints a marker on the serial console.
# A BIOS (SeaBIOS + iPXE ROM) and a UEFI (OVMF) VM boot at once, first with shoal as the
# lab's only DHCP server, then in proxy mode beside dnsmasq as the site's DHCP server.
# Each boot is timed from VM start to the marker and compared with the same VM booting
# the same kernel straight from QEMU (-kernel: the firmware and kernel alone).
# Usage: pxe_boot_test.sh SHOAL_BINARY SOURCE_DIR BUILD_DIR   (root; exits 77 otherwise)
# For debugging: MODES="proxy" (one mode), DIRECT="" (no -kernel baselines), CAPTURE=1 (a
# pcap of DHCP in the temporary directory), KEEP=1 (keep it and the serial logs).
set -euo pipefail

shoal=$1 src=$2 build=$3
. "$src/tools/netlab.sh"
lab_need_root
for tool in qemu-system-x86_64 dnsmasq dpkg-deb cpio curl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (tools/setup installs it)" >&2; exit 77; }
done
[ -f /usr/share/ovmf/OVMF.fd ] || { echo "SKIP: no OVMF (apt-get install ovmf)" >&2; exit 77; }

P=pxe$$
tmp=$(mktemp -d /tmp/shoal-pxe-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  lab_down "$P"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
LAB_NO_TRAP=1
trap cleanup EXIT
fail() {
  for f in "$tmp"/*.log; do echo "--- $f"; tail -n 40 "$f"; done >&2
  echo "FAIL: $*" >&2
  exit 1
}

# The client OS, built once per build directory (the kernel .deb stays in its cache).
clientos="$build/clientos"
[ -f "$clientos/vmlinuz" ] && [ -f "$clientos/initrd.img" ] || "$src/tools/mkclientos" "$clientos" >/dev/null
mkdir -p "$tmp/http/clientos" "$tmp/tftp"
cp "$clientos/vmlinuz" "$clientos/initrd.img" "$tmp/http/clientos/"

# The lab: shoal at 10.77.0.1 (P-s), the site's DHCP server at 10.77.1.1 (P-r1) in proxy
# mode, the VMs' taps on the same bridge.
lab_up "$P" 1
for vm in 1 2; do
  ip -n "$P-br" tuntap add dev "tap$vm" mode tap
  ip -n "$P-br" link set "tap$vm" master br0 up
done
# The server's link-local address must be usable (DAD done) before answering solicitations.
for i in $(seq 50); do
  ip -n "$P-s" -6 addr show dev eth0 scope link | grep -q tentative || break
  sleep 0.1
done

bios_mac=52:54:00:77:00:01
uefi_mac=52:54:00:77:00:02
cat > "$tmp/tasks.json" <<JSON
{"tasks": {
  "$uefi_mac": {"type": "deploy", "args": {"image": "lab-image", "disk": "/dev/vda"}}
}}
JSON

start_shoal() {  # mode
  local mode=$1
  cat > "$tmp/boot.json" <<JSON
{
  "dhcp": {"mode": "$mode", "interfaces": ["eth0"], "leases_path": "$tmp/leases",
           "pools": [{"first": "10.77.3.10", "last": "10.77.3.100"}]},
  "tftp": {"root": "$tmp/tftp"},
  "http": {"root": "$tmp/http"},
  "ipxe": {"tasks_file": "$tmp/tasks.json", "kernel_args": "console=ttyS0,115200 quiet",
           "menu_default": "inventory", "menu_timeout_ms": 1000}
}
JSON
  if [ "$mode" = proxy ]; then
    python3 - "$tmp/boot.json" <<'PY'
import json, sys, re
p = sys.argv[1]
text = open(p).read()
doc = json.loads(text)
del doc["dhcp"]["pools"]
open(p, "w").write(json.dumps(doc))
PY
  fi
  lab_exec "$P-s" "$shoal" boot -c "$tmp/boot.json" --check > "$tmp/check-$mode.log" 2>&1 \
    || fail "shoal boot --check ($mode) found problems: $(cat "$tmp/check-$mode.log")"
  ip netns exec "$P-s" "$shoal" --log debug boot -c "$tmp/boot.json" > "$tmp/shoal-$mode.log" 2>&1 &
  shoal_pid=$!
  pids+=("$shoal_pid")
  for i in $(seq 100); do
    lab_exec "$P-s" curl -sf -o /dev/null http://10.77.0.1/status && return 0
    sleep 0.1
  done
  fail "shoal boot did not start"
}

stop_shoal() {
  kill -TERM "$shoal_pid"
  wait "$shoal_pid" || fail "shoal boot exited with an error on SIGTERM"
}

# Boots one VM; prints the seconds from start to the marker. firmware: bios or uefi.
boot_vm() {  # name firmware mac tap [extra qemu args...]
  local name=$1 firmware=$2 mac=$3 tap=$4
  shift 4
  local fw=() rom=""
  # UEFI: no option ROM, so OVMF's own PXE client boots (as a PC's vendor firmware
  # would): DHCP, then ipxe.efi over TFTP. BIOS: SeaBIOS runs QEMU's iPXE ROM, which is
  # iPXE already and is sent straight to HTTP.
  [ "$firmware" = uefi ] && fw=(-bios /usr/share/ovmf/OVMF.fd) && rom=",romfile="
  local net=(-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no"
             -device "virtio-net-pci,netdev=n0,mac=$mac$rom" -boot n)
  [ "$tap" = none ] && net=(-net none)
  local t0
  t0=$(date +%s.%N)
  lab_exec "$P-br" timeout 240 qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot \
    -display none -monitor none -serial "file:$tmp/$name.serial.log" \
    "${fw[@]}" "${net[@]}" "$@" > "$tmp/$name.qemu.log" 2>&1 || true
  local t1
  t1=$(date +%s.%N)
  grep -aq SHOAL-CLIENT-OS-UP "$tmp/$name.serial.log" || { echo "no marker"; return 0; }
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}

check_marker() {  # name expected-substring...
  local name=$1
  shift
  local line
  line=$(grep -a SHOAL-CLIENT-OS-UP "$tmp/$name.serial.log" || true)
  [ -n "$line" ] || fail "$name: no client OS marker on the serial console"
  for want in "$@"; do
    case "$line" in *"$want"*) ;; *) fail "$name: marker lacks '$want': $line" ;; esac
  done
}

# Baselines: the same kernel and initrd straight from QEMU, no network boot.
declare -A took
for fwname in ${DIRECT:-bios uefi}; do
  took[direct-$fwname]=$(boot_vm "direct-$fwname" "$fwname" "" none \
    -kernel "$clientos/vmlinuz" -initrd "$clientos/initrd.img" -append "console=ttyS0,115200 quiet")
  check_marker "direct-$fwname"
done

for mode in ${MODES:-full proxy}; do
  dnsmasq_pid=
  if [ "$mode" = proxy ]; then
    # The site's DHCP server, which shoal does not control: addresses only, no PXE.
    ip netns exec "$P-r1" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=eth0 \
      --bind-interfaces --dhcp-range=10.77.4.10,10.77.4.100,255.255.0.0,1h \
      --dhcp-leasefile="$tmp/dnsmasq.leases" --log-dhcp > "$tmp/dnsmasq.log" 2>&1 &
    dnsmasq_pid=$!
    pids+=("$dnsmasq_pid")
  fi
  start_shoal "$mode"
  if [ "${CAPTURE:-0}" = 1 ]; then  # for debugging: every DHCP packet on the lab link
    ip netns exec "$P-br" tcpdump -i br0 -n -vv -s0 -w "$tmp/$mode.pcap" port 67 or port 68 or port 4011 2>/dev/null &
    pids+=($!)
  fi
  # Both VMs at once.
  boot_vm "$mode-bios" bios "$bios_mac" tap1 > "$tmp/$mode-bios.time" &
  bios_job=$!
  boot_vm "$mode-uefi" uefi "$uefi_mac" tap2 > "$tmp/$mode-uefi.time" &
  uefi_job=$!
  wait "$bios_job" "$uefi_job"
  took[$mode-bios]=$(cat "$tmp/$mode-bios.time")
  took[$mode-uefi]=$(cat "$tmp/$mode-uefi.time")
  status=$(lab_exec "$P-s" curl -sf http://10.77.0.1/status)
  stop_shoal
  [ -n "$dnsmasq_pid" ] && kill "$dnsmasq_pid" && wait "$dnsmasq_pid" 2>/dev/null || true

  # The BIOS VM has no task: the menu's default (inventory, after 1 s) booted it.
  check_marker "$mode-bios" "shoal.mac=$bios_mac" "shoal.mode=inventory" "shoal.server=http://10.77.0.1"
  # The UEFI VM has a pending deploy task with its arguments.
  check_marker "$mode-uefi" "shoal.mac=$uefi_mac" "shoal.task=deploy" "shoal.image=lab-image" \
    "shoal.disk=/dev/vda"
  log="$tmp/shoal-$mode.log"
  # OVMF fetched iPXE over TFTP (after its tsize probe), then iPXE fetched its script and
  # the client OS over HTTP; the BIOS ROM, iPXE already, went straight to HTTP.
  grep -q "'ipxe.efi' complete" "$log" || fail "$mode: no completed TFTP transfer of ipxe.efi"
  python3 - "$status" "$mode" <<'PY' || fail "$mode: counters: $status"
import json, sys
s = json.loads(sys.argv[1]); mode = sys.argv[2]
t = s["tftp"]; d = s["dhcp"]
assert t["completed"] >= 1 and t["failed"] == 0, t
assert t["option_probes"] >= 1, t  # OVMF's tsize probe ended with error 8
if mode == "full":
    assert d["offers"] >= 2 and d["acks"] >= 2, d
else:
    assert d["offers"] == 0 and d["proxy_offers"] + d["proxy_acks"] >= 2, d
PY
  grep -q "GET /boot?mac=$bios_mac -> 200" "$log" || fail "$mode: BIOS VM did not fetch its script"
  grep -q "GET /boot?mac=$uefi_mac -> 200" "$log" || fail "$mode: UEFI VM did not fetch its script"
  grep -q "GET /clientos/vmlinuz -> 200" "$log" || fail "$mode: no kernel fetched"
  # Router solicitations were answered (to all nodes, so an iPXE that hears another
  # host's answer stops waiting too), and no VM waited ~13 s for an IPv6 router.
  grep -q "router solicitation from fe80::.* answered" "$log" \
    || fail "$mode: no router solicitation was answered"
  if [ "$mode" = proxy ]; then
    grep -q "DHCPACK.*$bios_mac" "$tmp/dnsmasq.log" || fail "proxy: dnsmasq did not give the BIOS VM its address"
    grep -q "DHCPACK.*$uefi_mac" "$tmp/dnsmasq.log" || fail "proxy: dnsmasq did not give the UEFI VM its address"
  fi
done

echo "PXE boot to the client OS marker, seconds from VM start (TCG, two VMs at once):"
printf "  %-6s %-12s %-12s %-12s\n" "" "full DHCP" "proxyDHCP" "direct -kernel"
for fwname in bios uefi; do
  printf "  %-6s %-12s %-12s %-12s\n" "$fwname" "${took[full-$fwname]}" "${took[proxy-$fwname]}" "${took[direct-$fwname]}"
done
echo "PASS"
