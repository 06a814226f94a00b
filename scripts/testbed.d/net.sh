# shellcheck shell=bash
# net: the testbed's own network. A network namespace $TB_NETNS holding bridge br0 (no uplink),
# joined to the host by a veth pair whose host end carries $TB_CTL_ADDR. Hypervisor addresses live
# on br0 inside the namespace; VMs attach to br0 and keep their address when they migrate.
# Nothing here routes anywhere else: the host end is a /24 on-link route only.

net_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$TB_NETNS"; }

net_up() {
  local hv
  if ! net_exists; then
    ip netns add "$TB_NETNS"
  fi
  ip -n "$TB_NETNS" link set lo up
  if ! ip -n "$TB_NETNS" link show "$TB_BRIDGE" >/dev/null 2>&1; then
    ip -n "$TB_NETNS" link add "$TB_BRIDGE" type bridge stp_state 0 forward_delay 0
  fi
  ip -n "$TB_NETNS" link set "$TB_BRIDGE" up
  if ! ip link show "$TB_HOST_IF" >/dev/null 2>&1; then
    ip link add "$TB_HOST_IF" type veth peer name "$TB_NS_IF"
    ip link set "$TB_NS_IF" netns "$TB_NETNS"
  fi
  ip -n "$TB_NETNS" link set "$TB_NS_IF" master "$TB_BRIDGE"
  ip -n "$TB_NETNS" link set "$TB_NS_IF" up
  ip addr replace "$TB_CTL_ADDR/24" dev "$TB_HOST_IF"
  ip link set "$TB_HOST_IF" up
  for hv in "${TB_HVS[@]}"; do
    ip -n "$TB_NETNS" addr replace "${TB_HV_ADDR[$hv]}/24" dev "$TB_BRIDGE"
  done
  # the hypervisor addresses must be routed over the veth before anything binds to them
  for hv in "${TB_HVS[@]}"; do
    ip route get "${TB_HV_ADDR[$hv]}" | grep -q "dev $TB_HOST_IF" ||
      tb_die "net: ${TB_HV_ADDR[$hv]} is not routed over $TB_HOST_IF (another interface holds $TB_PREFIX.0/24?)"
  done
}

net_down() {
  ip link show "$TB_HOST_IF" >/dev/null 2>&1 && ip link del "$TB_HOST_IF"
  if net_exists; then ip netns del "$TB_NETNS" && tb_log "deleted netns $TB_NETNS"; fi
  return 0
}

net_status() {
  if net_exists && ip link show "$TB_HOST_IF" >/dev/null 2>&1; then
    tb_status_line net up "netns $TB_NETNS, $TB_HOST_IF $TB_CTL_ADDR/24, hypervisors $(for h in "${TB_HVS[@]}"; do printf '%s=%s ' "$h" "${TB_HV_ADDR[$h]}"; done)"
  else
    tb_status_line net down "no netns $TB_NETNS or no $TB_HOST_IF: run scripts/testbed up net"
    return 1
  fi
}
