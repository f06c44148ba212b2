#!/usr/bin/env bash
# Checks the systemd units: `systemd-analyze verify` on each, and the
# service's exposure score from `systemd-analyze security --offline=true`,
# which must be at most 2.0. The units name /usr/local/bin/sandboxd; verify
# wants the binary to exist, so a copy points at the freshly built one.
set -euo pipefail
bin=$(realpath "${1:-bin}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp systemd/sandboxd.service systemd/sandboxd.socket "$tmp/"
sed -i "s|/usr/local/bin/sandboxd|$bin/sandboxd|" "$tmp/sandboxd.service"
systemd-analyze verify --man=no "$tmp/sandboxd.socket" "$tmp/sandboxd.service"
echo "units: systemd-analyze verify ok"
systemd-sysusers --dry-run "$(realpath systemd/sandboxd.sysusers)" >/dev/null 2>&1 || \
  { echo "units: systemd/sandboxd.sysusers does not parse"; systemd-sysusers --dry-run "$(realpath systemd/sandboxd.sysusers)"; exit 1; }
echo "units: sysusers ok"
# --threshold is in tenths: 20 means an exposure of 2.0.
systemd-analyze security --offline=true --threshold=20 "$tmp/sandboxd.service" | tail -1
