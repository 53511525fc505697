#!/bin/sh
# Remove vipmesh from this node and leave nothing of it behind: the units, the running daemons (their VIPs
# released, sysctls restored, host-gw routes of protocol 86 flushed, the nftables table inet vipmesh deleted, through
# vipmesh-killall.sh), the
# configuration (/etc/vipmesh, /etc/default/vipmesh-*), the state (/var/lib/vipmesh: datastore, CA, tokens),
# /run/vipmesh, /run/flannel/subnet.env, the npm package and the commands in /usr/local/bin.
# Not undone: net.ipv4.ip_forward (and IPv6 forwarding), which host-gw turned on, as flannel and k3s leave it.
# Installed as /usr/local/bin/vipmesh-uninstall.sh by install.sh.
set -u
[ "$(id -u)" = 0 ] || { echo "[ERROR] vipmesh-uninstall.sh must run as root" >&2; exit 1; }
info() { echo "[INFO]  $*"; }
BIN_DIR=/usr/local/bin
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -x "$BIN_DIR/vipmesh-killall.sh" ]; then
  "$BIN_DIR/vipmesh-killall.sh"
elif [ -f "$HERE/vipmesh-killall.sh" ]; then
  sh "$HERE/vipmesh-killall.sh"
fi
# Also when neither killall script is there: the load balancer's table must not outlive vipmesh.
if command -v nft >/dev/null 2>&1 && nft list table inet vipmesh >/dev/null 2>&1; then
  nft delete table inet vipmesh && echo "[INFO]  deleted the nftables table inet vipmesh"
fi

if command -v systemctl >/dev/null; then
  for unit in vipmesh-server.service vipmesh-agent.service; do
    systemctl disable "$unit" >/dev/null 2>&1 && info "disabled $unit"
    systemctl reset-failed "$unit" >/dev/null 2>&1
  done
fi
for f in /etc/systemd/system/vipmesh-server.service /etc/systemd/system/vipmesh-agent.service \
  /etc/default/vipmesh-server /etc/default/vipmesh-agent /run/flannel/subnet.env; do
  [ -e "$f" ] && rm -f "$f" && info "removed $f"
done
command -v systemctl >/dev/null && systemctl daemon-reload
for d in /etc/vipmesh /var/lib/vipmesh /run/vipmesh; do
  [ -e "$d" ] && rm -rf "$d" && info "removed $d"
done
rmdir /run/flannel 2>/dev/null && info "removed /run/flannel (empty)"

if [ -d /usr/local/lib/node_modules/vipmesh ]; then
  if command -v npm >/dev/null; then
    npm uninstall -g --prefix /usr/local vipmesh >/dev/null 2>&1
  fi
  rm -rf /usr/local/lib/node_modules/vipmesh
  info "removed the package /usr/local/lib/node_modules/vipmesh"
fi
for f in "$BIN_DIR/vipmesh" "$BIN_DIR/vipmesh-killall.sh" "$BIN_DIR/vipmesh-uninstall.sh"; do
  { [ -e "$f" ] || [ -L "$f" ]; } && rm -f "$f" && info "removed $f"
done
info "vipmesh is uninstalled"
