#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian 12 machine with the Rust toolchain,
# then runs every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v cloud-init >/dev/null || need_apt+=(cloud-init)
command -v oscap >/dev/null || need_apt+=(openscap-scanner)
[ -f /usr/share/openscap/schemas/arf/1.1/asset-reporting-format_1.1.0.xsd ] || need_apt+=(openscap-common)
command -v xmllint >/dev/null || need_apt+=(libxml2-utils)
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
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
# schemathesis, pinned, in a cached venv, for the REST API's OpenAPI test.
st_version=4.32.5
st_venv=/var/cache/rampart-tests/venv-schemathesis-$st_version
if ! "$st_venv/bin/schemathesis" --version >/dev/null 2>&1; then
  rm -rf "$st_venv"
  mkdir -p "$(dirname "$st_venv")"
  /usr/bin/python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$st_version"
fi
export RAMPART_SCHEMATHESIS=$st_venv/bin/schemathesis
cargo build --workspace --locked
cargo test --workspace --locked
