#!/usr/bin/env bash
# Runs the differential tests (tests/tests/differential.rs) longer than CI does:
# the agent's effective values against the Debian 12 root's own programs (pam_rules,
# pwquality and account judge the debian-12, ubuntu-22.04 and ubuntu-24.04 rules).
#
#   RAMPART_DIFF_SEED     the seed (default 18, CI's)
#   RAMPART_DIFF_COUNT    configurations per family (default 2000)
#   RAMPART_DIFF_SECONDS  time budget per family (default 600)
#   RAMPART_DEBIAN_ROOT   the root (default: built or found by
#                         tests/fixtures/build-debian-root.sh)
#
# Example: RAMPART_DIFF_SEED=7 RAMPART_DIFF_COUNT=5000 scripts/differential.sh sysctl
# (an optional argument filters the test names: sysctl, sshd, modules, account,
# units, journald — journald, coredump and timesyncd configuration — sudo,
# mounts — /etc/fstab and mount units at boot — dev_shm — /dev/shm's flags after
# systemd-remount-fs — core_limit — pam_limits' core-file
# limit — pam_rules — the PAM stacks as libpam runs them — pwquality —
# pam_pwquality's settings as the real module applies them, unpacked from Debian's
# .debs (tests/fixtures/fetch-pwquality-debs.sh); the PAM ones need pamtester on the
# host — or packages — the dpkg database as the root's dpkg-query reads it, and rpm
# databases as the host's rpm lists them (needs rpm and rpmbuild on the host);
# RAMPART_DIFF_SHOW_REFUSED=1 prints dpkg-query's error for each database it refuses).
# Example: RAMPART_DIFF_SEED=7 RAMPART_DIFF_COUNT=6000 RAMPART_DIFF_SECONDS=180 \
#   scripts/differential.sh packages
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RAMPART_DEBIAN_ROOT:-}" ]; then
    RAMPART_DEBIAN_ROOT="$(bash tests/fixtures/build-debian-root.sh)"
fi
export RAMPART_DEBIAN_ROOT
if [ -z "${RAMPART_PWQUALITY_DEBS:-}" ]; then
    RAMPART_PWQUALITY_DEBS="$(bash tests/fixtures/fetch-pwquality-debs.sh)"
fi
export RAMPART_PWQUALITY_DEBS
export RAMPART_DIFF_SEED="${RAMPART_DIFF_SEED:-18}"
export RAMPART_DIFF_COUNT="${RAMPART_DIFF_COUNT:-2000}"
export RAMPART_DIFF_SECONDS="${RAMPART_DIFF_SECONDS:-600}"
exec cargo test -p rampart-tests --test differential -- --nocapture --test-threads=1 "${1:-}"
