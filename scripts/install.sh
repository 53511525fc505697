#!/bin/sh
# Install vipmesh and its systemd unit, the way k3s's installer does:
#   VIPMESH_URL set   -> agent  (vipmesh-agent.service, joins VIPMESH_URL with VIPMESH_TOKEN)
#   otherwise         -> server (vipmesh-server.service)
# Extra flags for the daemon: INSTALL_VIPMESH_EXEC="--node-ip 198.51.100.10 ..." (written to VIPMESH_ARGS).
# Knobs: VIPMESH_PACKAGE (npm spec or tarball/dir; default: vipmesh), INSTALL_VIPMESH_SKIP_NPM=true,
# INSTALL_VIPMESH_SKIP_ENABLE=true, INSTALL_VIPMESH_SKIP_START=true, INSTALL_VIPMESH_ROOT=/ (a staging root
# for packaging and tests).
set -eu

ROOT=${INSTALL_VIPMESH_ROOT:-}
PACKAGE=${VIPMESH_PACKAGE:-vipmesh}
info() { echo "[INFO]  $*"; }
fatal() { echo "[ERROR] $*" >&2; exit 1; }

if [ -n "${VIPMESH_URL:-}" ]; then
  ROLE=agent
  [ -n "${VIPMESH_TOKEN:-}" ] || fatal "VIPMESH_URL is set but VIPMESH_TOKEN is not: an agent needs the join token (vipmesh token on the server)"
  case "$VIPMESH_TOKEN" in K10*::server:*) ;; *) fatal "VIPMESH_TOKEN must be a join token: K10<CA hash>::server:<secret>";; esac
else
  ROLE=server
fi
UNIT=vipmesh-$ROLE.service
info "installing vipmesh as $ROLE"

if [ "${INSTALL_VIPMESH_SKIP_NPM:-false}" != true ]; then
  command -v npm >/dev/null || fatal "npm not found: install Node.js 20 or later first"
  npm install -g --omit=dev "$PACKAGE"
  BIN=$(npm prefix -g)/bin/vipmesh
  [ -x "$BIN" ] || fatal "npm did not install $BIN"
  if [ "$BIN" != "$ROOT/usr/local/bin/vipmesh" ]; then
    mkdir -p "$ROOT/usr/local/bin"
    ln -sf "$BIN" "$ROOT/usr/local/bin/vipmesh"
  fi
fi

SRC=$(cd "$(dirname "$0")/.." && pwd)/systemd
[ -f "$SRC/$UNIT" ] || SRC=$(npm root -g)/vipmesh/systemd
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/default" "$ROOT/etc/vipmesh"
install -m 0644 "$SRC/$UNIT" "$ROOT/etc/systemd/system/$UNIT"
info "wrote $ROOT/etc/systemd/system/$UNIT"

ENV_FILE=$ROOT/etc/default/vipmesh-$ROLE
umask 077
{
  echo "# written by scripts/install.sh"
  [ "$ROLE" = agent ] && echo "VIPMESH_URL=$VIPMESH_URL" && echo "VIPMESH_TOKEN=$VIPMESH_TOKEN"
  echo "VIPMESH_ARGS=${INSTALL_VIPMESH_EXEC:-}"
} > "$ENV_FILE"
chmod 0600 "$ENV_FILE"
info "wrote $ENV_FILE (mode 0600: it may hold the token)"

if [ -z "$ROOT" ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
  [ "${INSTALL_VIPMESH_SKIP_ENABLE:-false}" = true ] || systemctl enable "$UNIT"
  [ "${INSTALL_VIPMESH_SKIP_START:-false}" = true ] || systemctl restart "$UNIT"
fi
info "done: systemctl status $UNIT; journalctl -u $UNIT"
