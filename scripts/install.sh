#!/bin/sh
# Install vipmesh and its systemd unit, the way k3s's installer does:
#   VIPMESH_URL set   -> agent  (vipmesh-agent.service, joins VIPMESH_URL with VIPMESH_TOKEN)
#   otherwise         -> server (vipmesh-server.service)
# Extra flags for the daemon: INSTALL_VIPMESH_EXEC="--node-ip 198.51.100.10 ..." (written to VIPMESH_ARGS).
# Running it again upgrades the package and keeps the role, URL, token and flags of the installed node
# unless new ones are given.
# Knobs:
#   VIPMESH_PACKAGE               what npm installs: a tarball (npm pack), a folder or an npm spec [vipmesh]
#   INSTALL_VIPMESH_VERSION       install vipmesh@<version> from the registry (when VIPMESH_PACKAGE is unset)
#   INSTALL_VIPMESH_SKIP_NPM=true air gap: the package is already in /usr/local/lib/node_modules/vipmesh
#   INSTALL_VIPMESH_SKIP_ENABLE=true, INSTALL_VIPMESH_SKIP_START=true
#   INSTALL_VIPMESH_SKIP_ETCD=true   a server without Debian's etcd-server (no --cluster-init / HA join then)
#   INSTALL_VIPMESH_ROOT=/        a staging root for packaging and tests (no systemctl then)
# The package always lands in /usr/local/lib/node_modules/vipmesh (npm -g --prefix /usr/local), the command
# in /usr/local/bin/vipmesh, next to vipmesh-killall.sh and vipmesh-uninstall.sh.
set -eu

ROOT=${INSTALL_VIPMESH_ROOT:-}
# The units and scripts come from the package or checkout this script belongs to.
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/usr/local
PKG_DIR=$ROOT$PREFIX/lib/node_modules/vipmesh
BIN_DIR=$ROOT$PREFIX/bin
info() { echo "[INFO]  $*"; }
fatal() { echo "[ERROR] $*" >&2; exit 1; }
# The value of KEY in an env file written by an earlier install (empty when absent).
old() { [ -f "$1" ] && sed -n "s/^$2=//p" "$1" | tail -n 1 || true; }

if [ -n "${VIPMESH_PACKAGE:-}" ]; then
  PACKAGE=$VIPMESH_PACKAGE
elif [ -n "${INSTALL_VIPMESH_VERSION:-}" ]; then
  PACKAGE=vipmesh@${INSTALL_VIPMESH_VERSION#v}
else
  PACKAGE=vipmesh
fi

SERVER_ENV=$ROOT/etc/default/vipmesh-server
AGENT_ENV=$ROOT/etc/default/vipmesh-agent
# A re-install with no VIPMESH_URL on a node installed as an agent stays an agent.
if [ -z "${VIPMESH_URL:-}" ] && [ -f "$AGENT_ENV" ] && [ ! -f "$SERVER_ENV" ]; then
  VIPMESH_URL=$(old "$AGENT_ENV" VIPMESH_URL)
  VIPMESH_TOKEN=${VIPMESH_TOKEN:-$(old "$AGENT_ENV" VIPMESH_TOKEN)}
fi
if [ -n "${VIPMESH_URL:-}" ]; then
  ROLE=agent
  [ -n "${VIPMESH_TOKEN:-}" ] || VIPMESH_TOKEN=$(old "$AGENT_ENV" VIPMESH_TOKEN)
  [ -n "${VIPMESH_TOKEN:-}" ] || fatal "VIPMESH_URL is set but VIPMESH_TOKEN is not: an agent needs the join token (vipmesh token on the server)"
  case "$VIPMESH_TOKEN" in K10*::server:*) ;; *) fatal "VIPMESH_TOKEN must be a join token: K10<CA hash>::server:<secret>";; esac
else
  ROLE=server
fi
UNIT=vipmesh-$ROLE.service
ENV_FILE=$ROOT/etc/default/vipmesh-$ROLE
info "installing vipmesh as $ROLE"

# A server may run an embedded etcd member (--cluster-init, or a join with --server): Debian's etcd-server
# gives /usr/bin/etcd. Its own service is not wanted: vipmesh starts and supervises the member.
if [ "$ROLE" = server ] && [ -z "$ROOT" ] && [ "${INSTALL_VIPMESH_SKIP_ETCD:-false}" != true ] && [ ! -x /usr/bin/etcd ]; then
  if command -v apt-get >/dev/null; then
    info "installing etcd-server (the embedded etcd member of an HA server)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client
    if command -v systemctl >/dev/null; then systemctl disable --now etcd.service 2>/dev/null || true; fi
  else
    info "no apt-get: install etcd 3.4+ as /usr/bin/etcd yourself to use --cluster-init"
  fi
fi

if [ "${INSTALL_VIPMESH_SKIP_NPM:-false}" != true ]; then
  command -v npm >/dev/null || fatal "npm not found: install Node.js 20 or later first"
  npm install -g --prefix "$ROOT$PREFIX" --omit=dev --no-audit --no-fund "$PACKAGE"
else
  [ -f "$PKG_DIR/dist/cli/main.js" ] || fatal "INSTALL_VIPMESH_SKIP_NPM=true but $PKG_DIR/dist/cli/main.js is missing: unpack the package (with its node_modules) there first"
  info "INSTALL_VIPMESH_SKIP_NPM=true: using $PKG_DIR as it is"
fi
mkdir -p "$BIN_DIR"
chmod 0755 "$PKG_DIR/dist/cli/main.js"
[ -e "$BIN_DIR/vipmesh" ] || ln -sf ../lib/node_modules/vipmesh/dist/cli/main.js "$BIN_DIR/vipmesh"
for s in vipmesh-killall.sh vipmesh-uninstall.sh; do
  install -m 0755 "$SRC/scripts/$s" "$BIN_DIR/$s"
done
info "installed $BIN_DIR/vipmesh, $BIN_DIR/vipmesh-killall.sh, $BIN_DIR/vipmesh-uninstall.sh"

mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/default" "$ROOT/etc/vipmesh"
install -m 0644 "$SRC/systemd/$UNIT" "$ROOT/etc/systemd/system/$UNIT"
info "wrote $ROOT/etc/systemd/system/$UNIT"

# Flags: the new ones when given, else those of the earlier install.
if [ -n "${INSTALL_VIPMESH_EXEC+set}" ]; then
  ARGS=$INSTALL_VIPMESH_EXEC
else
  ARGS=$(old "$ENV_FILE" VIPMESH_ARGS)
  [ -z "$ARGS" ] || info "keeping the flags of the earlier install: $ARGS"
fi
umask 077
{
  echo "# written by vipmesh's install.sh"
  [ "$ROLE" = agent ] && echo "VIPMESH_URL=$VIPMESH_URL" && echo "VIPMESH_TOKEN=$VIPMESH_TOKEN"
  echo "VIPMESH_ARGS=$ARGS"
} > "$ENV_FILE.tmp"
chmod 0600 "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
info "wrote $ENV_FILE (mode 0600: it may hold the token)"

if [ -z "$ROOT" ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
  [ "${INSTALL_VIPMESH_SKIP_ENABLE:-false}" = true ] || systemctl enable "$UNIT"
  if [ "${INSTALL_VIPMESH_SKIP_START:-false}" = true ]; then
    info "INSTALL_VIPMESH_SKIP_START=true: start it with systemctl start $UNIT"
  else
    systemctl restart "$UNIT"
  fi
fi
info "done: systemctl status $UNIT; journalctl -u $UNIT; remove with vipmesh-uninstall.sh"
