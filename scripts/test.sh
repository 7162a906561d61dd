#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs the
# checks and the whole test suite. Run it as root on Debian (CI does), or with the
# packages already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build
./target/debug/tidb-host-agent check -c config.example.toml
cargo test --all-targets -- --test-threads=2

# Packaging (SPEC §12): build both packages; install, upgrade, remove and purge the .deb
# on this host; inspect the .rpm. It needs root, and leaves the host as it found it.
if [ "$(id -u)" -eq 0 ]; then
  scripts/verify-package.sh
else
  echo "skipping scripts/verify-package.sh: it installs packages, and needs root" >&2
fi
