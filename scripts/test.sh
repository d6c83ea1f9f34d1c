#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian 12 machine with the Rust toolchain,
# then runs every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# --fast: no root, no apt, no Debian root, no VM: format, lints, and the tests of the
# crates themselves (unit tests, every rule's fixtures, the report and protocol
# crates, the replay of every fuzz corpus and regression input) — minutes after a
# build. The full run is the default and what CI runs.
# The agent's rpm database tests run Debian's rpm and rpmbuild (and python3's sqlite3):
# --fast expects them installed, as the full run installs them.
if [ "${1:-}" = "--fast" ]; then
  cargo fmt --all --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  exec cargo test --locked -p rampart-agent -p rampart-collector -p rampart-report \
    -p rampart-proto -p rampart-loadgen -p rampart-fuzz-harness
fi
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
# The VM test (tests/tests/vm.rs): guestfwd relays, the NoCloud seed disk.
command -v socat >/dev/null || need_apt+=(socat)
command -v mkfs.vfat >/dev/null || need_apt+=(dosfstools)
command -v mcopy >/dev/null || need_apt+=(mtools)
command -v mkfs.ext4 >/dev/null || need_apt+=(e2fsprogs)
# The differential limits family drives the Debian root's libpam with pamtester.
command -v pamtester >/dev/null || need_apt+=(pamtester)
# The OCI image test (tests/tests/oci.rs): umoci builds the image (packaging/oci/build.sh,
# which also needs musl-tools and the musl target, as above); podman runs it with runc
# (crun 1.8 refuses hosts with hybrid cgroup hierarchies).
command -v umoci >/dev/null || need_apt+=(umoci)
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
# The console's browser test (tests/tests/console.rs): Debian's Chromium, driven by
# Playwright through its own executable path, with fonts so pages render as on a desktop.
[ -x /usr/lib/chromium/chromium ] || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
[ -f /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || need_apt+=(fonts-liberation)
# Agentless scans (tests/tests/ssh.rs): Debian's sshd, started by the test on a
# loopback port with its own host key and configuration (the system's is not used).
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
# The PostgreSQL storage tests (tests/src/pg.rs): throwaway servers from Debian's
# PostgreSQL 15 binaries, /usr/lib/postgresql/15/bin, run as the postgres user.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# qemu-system-x86 comes from bookworm-backports: these machines carry qemu-utils 10 from
# there, which bookworm's qemu-system-x86 7.2 conflicts with.
need_qemu=
command -v qemu-system-x86_64 >/dev/null || need_qemu=1
command -v qemu-img >/dev/null || need_qemu=1
if [ -n "$need_qemu" ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(bash tests/fixtures/debian-mirror.sh)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" >/etc/apt/sources.list.d/bookworm-backports.sources
fi
if [ ${#need_apt[@]} -gt 0 ] || [ -n "$need_qemu" ]; then
  apt-get update -qq
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ -n "$need_qemu" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
    qemu-system-x86 qemu-utils >/dev/null
fi
# A real Debian 12 root for the scan tests, built once and cached.
root=$(bash tests/fixtures/build-debian-root.sh)
export RAMPART_DEBIAN_ROOT=$root
# Roots laid out like RHEL 9 and Amazon Linux 2023 cloud images, with a real rpm
# database written by Debian's rpm (no RHEL or Amazon archive is used), built once and
# cached; what they do not prove: tests/fixtures/README-rpm-roots.md.
RAMPART_RHEL9_ROOT=$(bash tests/fixtures/build-rpm-root.sh rhel-9)
RAMPART_AL2023_ROOT=$(bash tests/fixtures/build-rpm-root.sh al2023)
export RAMPART_RHEL9_ROOT RAMPART_AL2023_ROOT
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
# Playwright for Python, pinned, in a cached venv, for the console's browser test. Its
# own browser download (`playwright install`) is never used: the test launches Debian's
# Chromium, /usr/lib/chromium/chromium (/usr/bin/chromium is a wrapper script).
pw_version=1.65.3
pw_venv=/var/cache/rampart-tests/venv-playwright-$pw_version
if ! "$pw_venv/bin/python" -c 'import playwright.sync_api' >/dev/null 2>&1; then
  rm -rf "$pw_venv"
  mkdir -p "$(dirname "$pw_venv")"
  /usr/bin/python3 -m venv "$pw_venv"
  "$pw_venv/bin/pip" install --quiet --disable-pip-version-check "playwright==$pw_version"
fi
export RAMPART_PLAYWRIGHT_PYTHON=$pw_venv/bin/python
# axe-core, pinned, fetched once from the npm registry; its axe.min.js must have the
# SHA-256 pinned here.
axe_version=4.14.1
axe_sha256=29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c
axe_js=/var/cache/rampart-tests/axe-core-$axe_version/axe.min.js
if ! echo "$axe_sha256  $axe_js" | sha256sum --check --status 2>/dev/null; then
  axe_tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$axe_tmp/axe-core.tgz" \
    "https://registry.npmjs.org/axe-core/-/axe-core-$axe_version.tgz"
  tar -xzf "$axe_tmp/axe-core.tgz" -C "$axe_tmp" package/axe.min.js
  if ! echo "$axe_sha256  $axe_tmp/package/axe.min.js" | sha256sum --check --status; then
    echo "test.sh: axe-core $axe_version's axe.min.js does not have the pinned SHA-256" >&2
    rm -rf "$axe_tmp"
    exit 1
  fi
  mkdir -p "$(dirname "$axe_js")"
  mv "$axe_tmp/package/axe.min.js" "$axe_js"
  rm -rf "$axe_tmp"
fi
export RAMPART_AXE_JS=$axe_js
# Debian's Prometheus and promtool for the monitoring test (tests/tests/monitoring.rs),
# unpacked from the package into a cache: no service is installed or started.
prom_dir=/var/cache/rampart-tests/prometheus-debian12
if [ ! -x "$prom_dir/prometheus" ] || [ ! -x "$prom_dir/promtool" ]; then
  prom_tmp=$(mktemp -d)
  chmod 755 "$prom_tmp"
  if ! (cd "$prom_tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$prom_tmp" && apt-get download prometheus >/dev/null 2>&1)
  fi
  dpkg-deb -x "$prom_tmp"/prometheus_*.deb "$prom_tmp/x"
  mkdir -p "$prom_dir"
  cp "$prom_tmp/x/usr/bin/prometheus" "$prom_tmp/x/usr/bin/promtool" "$prom_dir/"
  rm -rf "$prom_tmp"
fi
export RAMPART_PROMETHEUS=$prom_dir
# Debian 12's pam_pwquality, libpwquality and cracklib as .deb files, fetched once into
# a cache: the differential pwquality family unpacks them into its own copy of the
# Debian 12 root (the cached root has no libpam-pwquality).
RAMPART_PWQUALITY_DEBS=$(bash tests/fixtures/fetch-pwquality-debs.sh)
export RAMPART_PWQUALITY_DEBS
# A bootable Debian 12 VM image with cloud-init for the VM test, built once and cached.
vm_image=$(bash tests/fixtures/build-vm-image.sh)
export RAMPART_VM_IMAGE=$vm_image
# The packaging, OCI and VM tests build the static programs with the release profile's
# settings but no LTO (Cargo.toml, [profile.package-test]): minutes less per run.
export RAMPART_RELEASE_PROFILE=${RAMPART_RELEASE_PROFILE:-package-test}
# A run from a clean clone gains nothing from incremental compilation, whose caches
# take gigabytes beside the target directory.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Formatting and lints first: they fail in seconds, before the long tests.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
cargo test --workspace --locked
# Every fuzz target for a few seconds on top of its corpus (the replay above runs the
# corpus itself; scripts/fuzz.sh runs them for as long as asked, by hand). cargo-fuzz
# needs the nightly toolchain these machines carry beside stable.
if cargo +nightly --version >/dev/null 2>&1; then
  FUZZ_DEV=1 bash scripts/fuzz.sh "${RAMPART_FUZZ_SECONDS:-3}"
else
  echo "test.sh: no nightly toolchain (rustup toolchain install nightly): the fuzz smoke run did NOT run; the corpus replay above did" >&2
fi
