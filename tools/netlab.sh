# A lab network in namespaces, for the demo, the netns tests and the benchmarks.
# Source it, then:
#   lab_up PREFIX N      a bridge (in namespace PREFIX-br) with a sender PREFIX-s
#                        (10.77.0.1, link PREFIX-s-eth0) and receivers PREFIX-r1..N
#                        (10.77.1.1..N), each with eth0 on the bridge
#   lab_exec NS CMD...   run in a namespace
#   lab_down PREFIX      remove it all (also done by the EXIT trap lab_up sets,
#                        unless LAB_NO_TRAP is set)
#   lab_loss NS PERMILLE drop this share of incoming UDP in a namespace (nftables)
#   lab_rate NS RATE     limit the namespace's egress (tc tbf), e.g. 1gbit
# Uses only addresses on interfaces it creates.

lab_need_root() {
  if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    echo "SKIP: needs root and ip netns" >&2
    exit 77
  fi
}

lab_exec() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

lab_add_host() {
  local prefix=$1 name=$2 addr=$3
  local ns="$prefix-$name"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # veth: eth0 inside the host, the other end on the bridge
  ip link add "v$name$$" type veth peer name eth0 netns "$ns"
  ip link set "v$name$$" netns "$prefix-br"
  ip -n "$prefix-br" link set "v$name$$" master br0 up
  ip -n "$ns" addr add "$addr/16" brd + dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add 224.0.0.0/4 dev eth0
  # MTU-sized frames on the wire, as a real NIC would carry them
  ip netns exec "$ns" ethtool -K eth0 tx-udp-segmentation off >/dev/null 2>&1 || true
}

lab_up() {
  local prefix=$1 count=$2
  LAB_PREFIX=$prefix
  [ -n "${LAB_NO_TRAP:-}" ] || trap 'lab_down "$LAB_PREFIX"' EXIT
  lab_down "$prefix"
  ip netns add "$prefix-br"
  ip -n "$prefix-br" link set lo up
  ip -n "$prefix-br" link add br0 type bridge mcast_snooping 0
  ip -n "$prefix-br" link set br0 up
  lab_add_host "$prefix" s 10.77.0.1
  local i
  for i in $(seq 1 "$count"); do
    lab_add_host "$prefix" "r$i" "10.77.1.$i"
  done
}

lab_down() {
  local prefix=$1 ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(br|s|r[0-9]+)$"); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

lab_loss() {
  local ns=$1 permille=$2
  ip netns exec "$ns" nft -f - <<NFT
table inet shoal_loss {
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto udp numgen random mod 1000 < $permille drop
  }
}
NFT
}

lab_rate() {
  local ns=$1 rate=$2
  ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$rate" burst 256kb latency 50ms
}
