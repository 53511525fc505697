#!/bin/sh
# Stop vipmesh and release its data plane, keeping its state (/etc/vipmesh, /var/lib/vipmesh, the units):
# `systemctl start vipmesh-server` (or -agent) brings the node back as it was.
#   - stops vipmesh-server and vipmesh-agent (SIGTERM: each releases its VIPs and restores the sysctls)
#   - removes any VIP a killed daemon left on lo (label lo:vm, address protocol 0x76)
#   - writes back arp_ignore/arp_announce from /run/vipmesh/arp-sysctl.json if a daemon could not
#   - flushes the host-gw routes (protocol 86)
#   - deletes the load balancer's nftables table (inet vipmesh; no other table is touched)
# Installed as /usr/local/bin/vipmesh-killall.sh by install.sh.
set -u
[ "$(id -u)" = 0 ] || { echo "[ERROR] vipmesh-killall.sh must run as root" >&2; exit 1; }
info() { echo "[INFO]  $*"; }

if command -v systemctl >/dev/null; then
  for unit in vipmesh-server.service vipmesh-agent.service; do
    if systemctl cat "$unit" >/dev/null 2>&1; then
      systemctl stop "$unit" && info "stopped $unit"
    fi
  done
fi

# VIPs a killed daemon left: IPv4 ones carry the label lo:vm, both families the address protocol 0x76 (an
# iproute2 without address protocols, such as Debian 12's 6.1, finds only the labelled IPv4 ones; the
# next start of the daemon removes the rest).
for family in -4 -6; do
  ip "$family" -o addr show dev lo proto 0x76 2>/dev/null | awk '{print $4}' | while read -r cidr; do
    ip "$family" addr del "$cidr" dev lo && info "released VIP $cidr"
  done
done
ip -4 -o addr show dev lo label lo:vm 2>/dev/null | awk '{print $4}' | while read -r cidr; do
  ip -4 addr del "$cidr" dev lo && info "released VIP $cidr"
done

STATE=/run/vipmesh/arp-sysctl.json
if [ -f "$STATE" ]; then
  # {"eth0":{"arp_ignore":"0","arp_announce":"0"},...}: one "iface key value" line each.
  tr -d '{}" \n' < "$STATE" | tr ',' '\n' | awk -F: 'NF == 3 { iface = $1; print iface, $2, $3 } NF == 2 { print iface, $1, $2 }' |
    while read -r iface key value; do
      f=/proc/sys/net/ipv4/conf/$iface/$key
      [ -w "$f" ] && echo "$value" > "$f" && info "restored net.ipv4.conf.$iface.$key=$value"
    done
  rm -f "$STATE"
fi

ip -4 route flush proto 86 2>/dev/null && info "flushed IPv4 routes of protocol 86 (host-gw)"
ip -6 route flush proto 86 2>/dev/null && info "flushed IPv6 routes of protocol 86 (host-gw)"
if command -v nft >/dev/null 2>&1 && nft list table inet vipmesh >/dev/null 2>&1; then
  nft delete table inet vipmesh && info "deleted the nftables table inet vipmesh (load balancer)"
fi
exit 0
