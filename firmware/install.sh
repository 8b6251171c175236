#!/usr/bin/env bash
# Make a fresh Debian 12 machine an edge box (or, with --console, a control-room console).
#
#   sudo firmware/install.sh --vendor-key vendor.pub [--wheels DIR] [--console]
#
# --console makes a console machine: the edge-console user, /etc/edge-console (root:edge-console 0750)
# with console.env (the unit's EnvironmentFile) and boxes/ for each box's box.pub.json, the console's
# key pair in /var/lib/edge-console, and only edge-console.service enabled (never edge.service).
#
# Lays down: the service users (edge, in group video; edge-console), the package in a versioned venv
# /opt/edge/versions/<version>/venv with `current` pointing at it (the layout `edge firmware apply`
# continues), the systemd units and the USB udev rule (links into /opt/edge/current, so a firmware
# switch switches them too), /etc/edge (root:edge 0750) with the trusted vendor key, and the state dir
# /var/lib/edge (edge, 0700). Then: `sudo edge provision ...` and `sudo systemctl start edge`.
#
# --wheels DIR installs offline from wheels (the package and every dependency); without it the
# package is installed from this source tree, fetching dependencies from PyPI. Re-running is safe.
# EDGE_INSTALL_STEPS (default: all, in this order: packages users package units dirs console enable)
# runs only the steps named, for re-runs and for tests/test_install.py.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=/opt/edge
WHEELS=""
VENDOR_KEY=""
CONSOLE=0
CONSOLE_ETC=/etc/edge-console
CONSOLE_DATA=/var/lib/edge-console
STEPS=" ${EDGE_INSTALL_STEPS:-packages users package units dirs console enable} "
step() { case "$STEPS" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=$(cd "$2" && pwd); shift 2 ;;
    --vendor-key) VENDOR_KEY=$2; shift 2 ;;
    --console) CONSOLE=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -n "$VENDOR_KEY" ] || [ -d /etc/edge/vendor-keys ] || {
  echo "install.sh: --vendor-key FILE is needed (firmware updates are verified against it)" >&2; exit 1; }

if step packages; then
echo "== system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv util-linux udev systemd >/dev/null
fi

if step users; then
echo "== users"
getent group edge >/dev/null || groupadd --system edge
getent passwd edge >/dev/null || useradd --system --gid edge --home-dir /var/lib/edge --no-create-home \
  --shell /usr/sbin/nologin --comment "edge LFR daemon" edge
getent group video >/dev/null && usermod -a -G video edge
if [ "$CONSOLE" = 1 ]; then
  getent group edge-console >/dev/null || groupadd --system edge-console
  getent passwd edge-console >/dev/null || useradd --system --gid edge-console --home-dir /var/lib/edge-console \
    --no-create-home --shell /usr/sbin/nologin --comment "edge operator console" edge-console
fi
fi

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -1)
DEST=$ROOT/versions/$VERSION
if step package; then
echo "== package"
if [ "$(readlink -f "$ROOT/current" 2>/dev/null)" = "$DEST" ]; then
  echo "version $VERSION is already current: reinstalling its units and links only"
else
  rm -rf "$DEST"
  mkdir -p "$DEST/units" "$DEST/udev"
  python3 -m venv "$DEST/venv"
  if [ -n "$WHEELS" ]; then
    "$DEST/venv/bin/pip" install -q --no-index --no-cache-dir --find-links "$WHEELS" edge-lfr
  else
    "$DEST/venv/bin/pip" install -q --no-cache-dir "$SRC"
  fi
  cp "$SRC"/systemd/*.service "$SRC/firmware/edge-usb@.service" "$DEST/units/"
  cp "$SRC/firmware/99-edge-usb.rules" "$DEST/udev/"
  printf '{"version": "%s", "installed_by": "firmware/install.sh"}\n' "$VERSION" > "$DEST/manifest.json"
  ln -sfn "versions/$VERSION" "$ROOT/.current.new" && mv -T "$ROOT/.current.new" "$ROOT/current"
fi
ln -sf "$ROOT/current/venv/bin/edge" /usr/local/bin/edge
fi

if step units; then
echo "== units, udev rule"
for unit in "$ROOT"/current/units/*.service; do
  ln -sf "$ROOT/current/units/$(basename "$unit")" "/etc/systemd/system/$(basename "$unit")"
done
mkdir -p /etc/udev/rules.d
ln -sf "$ROOT/current/udev/99-edge-usb.rules" /etc/udev/rules.d/99-edge-usb.rules
fi

if step dirs; then
echo "== config and state dirs"
install -d -m 0750 -o root -g edge /etc/edge
install -d -m 0755 -o root -g root /etc/edge/vendor-keys
[ -z "$VENDOR_KEY" ] || install -m 0644 -o root -g root "$VENDOR_KEY" "/etc/edge/vendor-keys/$(basename "$VENDOR_KEY")"
install -d -m 0700 -o edge -g edge /var/lib/edge
fi

if [ "$CONSOLE" = 1 ] && step console; then
echo "== console: $CONSOLE_ETC, key pair"
# the console user reads its settings and the boxes' public identities here; /etc/edge stays the box's
install -d -m 0750 -o root -g edge-console "$CONSOLE_ETC" "$CONSOLE_ETC/boxes"
if [ ! -f "$CONSOLE_ETC/console.env" ]; then
  cat > "$CONSOLE_ETC/console.env.new" <<'ENV'
# edge-console.service reads this (EnvironmentFile). One --box per box this console serves, with the
# box's box.pub.json copied into /etc/edge-console/boxes/, e.g.
#   EDGE_CONSOLE_ARGS=--listen 127.0.0.1:8080 --box tcp://10.0.0.21:5599=/etc/edge-console/boxes/box-1.pub.json
EDGE_CONSOLE_ARGS=--listen 127.0.0.1:8080
ENV
  chown root:edge-console "$CONSOLE_ETC/console.env.new"
  chmod 0640 "$CONSOLE_ETC/console.env.new"
  mv "$CONSOLE_ETC/console.env.new" "$CONSOLE_ETC/console.env"
fi
install -d -m 0700 -o edge-console -g edge-console "$CONSOLE_DATA"
[ -f "$CONSOLE_DATA/console.key" ] || runuser -u edge-console -- /usr/local/bin/edge console keygen --data "$CONSOLE_DATA"
fi

if step enable; then
echo "== enable"
# a console machine runs the console only; a box runs the box only
if [ "$CONSOLE" = 1 ]; then UNIT=edge-console.service; else UNIT=edge.service; fi
systemctl enable -q "$UNIT" 2>/dev/null || {
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf "/etc/systemd/system/$UNIT" "/etc/systemd/system/multi-user.target.wants/$UNIT"; }
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  udevadm control --reload || true
fi
fi

echo "Installed edge $VERSION in $DEST."
if [ "$CONSOLE" = 1 ]; then
  echo "Next: copy each box's box.pub.json into $CONSOLE_ETC/boxes/ and add --box ENDPOINT=FILE for it to"
  echo "      EDGE_CONSOLE_ARGS in $CONSOLE_ETC/console.env; register $CONSOLE_DATA/console.pub on each box"
  echo "      ('edge trust add-console'); add operators: sudo -u edge-console edge console adduser NAME --data $CONSOLE_DATA"
  echo "      then: sudo systemctl start edge-console"
else
  echo "Next: sudo edge provision --box-id NAME --camera ID=SOURCE ... --issuer-key FILE --console-key FILE"
  echo "      sudo edge doctor && sudo systemctl start edge"
fi
