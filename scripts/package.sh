#!/usr/bin/env bash
# Builds the .deb and the .rpm into dist/ from a clean checkout: a release build
# (LTO, stripped: [profile.release] in Cargo.toml), then cargo-deb and
# cargo-generate-rpm, installed with `cargo install --locked` when missing.
#
#   scripts/package.sh                      # dist/tidb-host-agent_<version>-1_<arch>.deb, dist/*.rpm
#   DEB_REVISION=2 scripts/package.sh       # the .deb as <version>-2 (an upgrade of -1)
#   PACKAGE_NO_BUILD=1 scripts/package.sh   # package target/release as it is
set -euo pipefail
cd "$(dirname "$0")/.."

# Versions known to read our metadata; any installed version is used as it is.
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

if ! cargo deb --version >/dev/null 2>&1; then
  cargo install --locked "cargo-deb@$CARGO_DEB_VERSION"
fi
if ! cargo generate-rpm --version >/dev/null 2>&1; then
  cargo install --locked "cargo-generate-rpm@$CARGO_GENERATE_RPM_VERSION"
fi

if [ -z "${PACKAGE_NO_BUILD:-}" ]; then
  cargo build --release --locked
fi
binary=target/release/tidb-host-agent
if [ ! -x "$binary" ]; then
  echo "package.sh: $binary is missing; build it (cargo build --release) or unset PACKAGE_NO_BUILD" >&2
  exit 1
fi

mkdir -p dist
deb_args=(--no-build --output dist/)
if [ -n "${DEB_REVISION:-}" ]; then
  deb_args+=(--deb-revision "$DEB_REVISION")
fi
deb=$(cargo deb "${deb_args[@]}" | tail -n 1)
cargo generate-rpm --output dist/
rpm=$(ls -t dist/*.rpm | head -n 1)

echo "binary: $binary, $(stat -c %s "$binary") bytes ($(du -h "$binary" | cut -f1)), $(file -b "$binary" | grep -o 'not stripped\|stripped' || echo 'strip state unknown')"
echo "deb:    $deb"
echo "rpm:    $rpm"
