#!/usr/bin/env bash
# Builds the .deb and the .rpm into dist/ from a clean checkout: a release build
# (LTO, stripped: [profile.release] in Cargo.toml), then cargo-deb and
# cargo-generate-rpm, installed with `cargo install --locked` when missing.
#
# The man page and the shell completions come from the CLI definition (src/cli.rs),
# written by the package-docs example (packaging/docs.rs) into target/package-docs,
# with the .deb's changelog.Debian.
#
#   scripts/package.sh                      # dist/tidb-host-agent_<version>-1_<arch>.deb, dist/*.rpm
#   DEB_REVISION=2 scripts/package.sh       # the .deb as <version>-2 (an upgrade of -1)
#   PACKAGE_NO_BUILD=1 scripts/package.sh   # package target/release as it is
#   PACKAGE_MAINTAINER='Ops Team <ops@example.org>' scripts/package.sh
#                                           # the .deb's Maintainer and changelog signer
#                                           # (default: [package.metadata.deb] maintainer)
set -euo pipefail
cd "$(dirname "$0")/.."

default_maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml)
maintainer=${PACKAGE_MAINTAINER:-$default_maintainer}
# Debian's form, checked here rather than by lintian after the build.
if ! grep -Eq '^[^<>@]*[^<>@ ] <[^<>@ ]+@[^<>@ ]+\.[^<>@ .]+>$' <<<"$maintainer"; then
  echo "package.sh: PACKAGE_MAINTAINER must read 'Name <user@domain.tld>', not '$maintainer'" >&2
  exit 2
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

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

# Dev profile: the example only renders text, and the tests have built its dependencies.
docs=target/package-docs
rm -rf "$docs"
cargo run --locked --quiet --example package-docs -- "$docs"
gzip -9n "$docs/tidb-host-agent.8"
revision=${DEB_REVISION:-1}
# The build's date, or the last commit's: the same tree packages the same changelog.
stamp=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
cat >"$docs/changelog.Debian" <<EOF
tidb-host-agent ($version-$revision) unstable; urgency=medium

  * Upstream release $version, built from the repository with scripts/package.sh.
    The upstream changes are in /usr/share/doc/tidb-host-agent/changelog.gz.

 -- $maintainer  $(date -u -R -d "@$stamp")
EOF

mkdir -p dist
deb_args=(--no-build --output dist/ --maintainer "$maintainer" --deb-revision "$revision")
deb=$(cargo deb "${deb_args[@]}" | tail -n 1)
cargo generate-rpm --output dist/
rpm=$(ls -t dist/*.rpm | head -n 1)

echo "binary: $binary, $(stat -c %s "$binary") bytes ($(du -h "$binary" | cut -f1)), $(file -b "$binary" | grep -o 'not stripped\|stripped' || echo 'strip state unknown')"
echo "deb:    $deb"
echo "rpm:    $rpm"
