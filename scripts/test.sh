#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian 12 machine with the Rust toolchain,
# then runs every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v curl >/dev/null || need_apt+=(curl)
command -v cloud-init >/dev/null || need_apt+=(cloud-init)
# The packaging test builds the static agent (musl-gcc), .rpm packages (rpmbuild) and
# checks binaries (objdump); packaging/build.sh also adds the Rust musl target.
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v rpmbuild >/dev/null || need_apt+=(rpm)
command -v objdump >/dev/null || need_apt+=(binutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# A real Debian 12 root for the scan tests, built once and cached.
root=$(bash tests/fixtures/build-debian-root.sh)
export RAMPART_DEBIAN_ROOT=$root
cargo build --workspace --locked
cargo test --workspace --locked
