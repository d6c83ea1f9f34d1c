#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/seed-<sha1>)
from the rule fixtures (agent/tests/fixtures/**/*.toml): each table of files there is
a small root, and each target takes the files its reader reads, joined with NUL bytes
in the order the harness splits them (fuzz/harness/src/lib.rs). The RPM seeds come
from a database that Debian's rpm builds here (skipped without rpm); the collector's
seeds are protobuf messages encoded below.

Run from anywhere: python3 fuzz/make-seeds.py. Seeds are committed; fuzzing adds its
own finds under fuzz/corpus/ too, which scripts/fuzz.sh keeps out of git."""

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import tomllib

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")

# target -> (main file pattern, drop-in pattern or None)
ROOTED = {
    "sshd_config": (r"/etc/ssh/sshd_config", r"/etc/ssh/sshd_config\.d/.*"),
    "sudoers": (r"/etc/sudoers", r"/etc/sudoers\.d/.*"),
    "login_defs": (r"/etc/login\.defs", None),
    "sysctl": (r"/etc/sysctl\.conf", r"/(etc|usr/lib|lib|run|usr/local/lib)/sysctl\.d/.*"),
    "modprobe": (r"/(etc|usr/lib|lib|run)/modprobe\.d/.*", None),
    "audit_rules": (r"/etc/audit/rules\.d/.*", r"/etc/audit/rules\.d/.*"),
    "nftables": (r"/etc/nftables\.conf", r"/etc/.*\.nft"),
    "iptables": (r"/etc/iptables/rules\.v[46]", None),
    "firewalld": (r"/etc/firewalld/firewalld\.conf", r"/(etc|usr/lib)/firewalld/zones/.*\.xml"),
    "grub": (r"/boot/grub2?/(grub|user)\.cfg|/boot/efi/.*/grub\.cfg", None),
    "aide": (r"/etc/aide/aide\.conf", r"/etc/aide/aide\.conf\.d/.*"),
    "journald": (r"/etc/systemd/journald\.conf", r"/.*/systemd/journald\.conf\.d/.*"),
    "rsyslog": (r"/etc/rsyslog\.conf", r"/etc/rsyslog\.d/.*"),
    "pam_limits": (r"/etc/security/limits\.conf", r"/etc/security/limits\.d/.*"),
    "os_release": (r"/(etc|usr/lib)/os-release", None),
    "dpkg_status": (r"/var/lib/dpkg/status", None),
}
# The PAM harness puts part i at /etc/pam.d/<PAM[i]>.
PAM = ["sshd", "common-auth", "common-password", "common-account", "system-auth",
       "password-auth", "su", "login"]

seeds = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if data:
        seeds.setdefault(target, set()).add(data)


def file_tables(node):
    """Every table whose keys are absolute paths with text values."""
    if isinstance(node, dict):
        files = {k: v for k, v in node.items() if k.startswith("/") and isinstance(v, str)}
        if files:
            yield files
        for v in node.values():
            yield from file_tables(v)
    elif isinstance(node, list):
        for v in node:
            yield from file_tables(v)


def from_files(files):
    for target, (main, dropin) in ROOTED.items():
        mains = sorted(p for p in files if re.fullmatch(main, p))
        if dropin is None:
            for p in mains:
                add(target, files[p])
            continue
        drops = sorted(p for p in files if re.fullmatch(dropin, p) and p not in mains[:1])
        if not mains and not drops:
            continue
        parts = [files[mains[0]] if mains else ""] + [files[p] for p in drops]
        add(target, "\0".join(parts))
    pam = [files.get("/etc/pam.d/" + n, "") for n in PAM]
    if any(pam):
        add("pam", "\0".join(pam).rstrip("\0"))
    fstab = files.get("/etc/fstab", "")
    info = files.get("/proc/1/mountinfo", files.get("/proc/self/mountinfo", ""))
    if fstab or info:
        add("mounts", fstab + ("\0" + info if info else ""))


def fixtures():
    root = os.path.join(REPO, "agent", "tests", "fixtures")
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith(".toml"):
                with open(os.path.join(dirpath, n), "rb") as f:
                    for files in file_tables(tomllib.load(f)):
                        from_files(files)


def rpm_seeds():
    if not shutil.which("rpm") or not shutil.which("rpmbuild"):
        print("make-seeds: no rpm/rpmbuild, RPM seeds left as they are", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "seed.spec")
        with open(spec, "w") as f:
            f.write("Name: seed\nVersion: 1.2\nRelease: 3\nEpoch: 1\nSummary: s\n"
                    "License: none\nBuildArch: noarch\n%description\ns\n%files\n")
        subprocess.run(["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {tmp}", spec],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rpms = [os.path.join(d, n) for d, _, ns in os.walk(os.path.join(tmp, "RPMS"))
                for n in ns]
        db = os.path.join(tmp, "db")
        subprocess.run(["rpm", "--dbpath", db, "--initdb"], check=True)
        subprocess.run(["rpm", "--dbpath", db, "-i", "--justdb", "--nodeps", "--noscripts"]
                       + rpms, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = os.path.join(db, "rpmdb.sqlite")
        con = sqlite3.connect(path)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for (blob,) in con.execute("SELECT blob FROM Packages"):
            add("rpm_header", bytes(blob))
        # The database made small: only the Packages table, in 512-byte pages, so that the
        # fuzzer's mutations land on structure rather than on free space.
        con.execute("PRAGMA journal_mode=DELETE")
        for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT IN ('Packages', 'sqlite_sequence')"
        ).fetchall():
            con.execute(f'DROP TABLE "{name}"')
        con.execute("PRAGMA page_size=512")
        con.execute("VACUUM")
        con.close()
        with open(path, "rb") as f:
            add("rpmdb_sqlite", f.read())
    return True


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def message_seeds():
    label = field(1, "env") + field(2, "prod")
    hello = (field(1, "agent-1") + field(2, "host") + field(3, "10.0.0.1") + field(4, "aws")
             + field(5, "i-1") + field(6, "eu-west-1") + field(7, "debian 12")
             + field(8, "0.1.0") + field(9, "c1") + field(10, label) + field(11, 2))
    add("agent_message", field(1, hello))
    add("agent_message", field(2, field(1, "scan-1") + field(2, 1700000000000)))
    result = field(1, "1.1.1") + field(2, 1) + field(3, "/etc/x:1: ok")
    add("agent_message", field(3, field(1, "scan-1") + field(2, 1) + field(3, result)))
    add("agent_message", field(4, field(1, "scan-1") + field(2, 1) + field(3, 1) + field(4, 5)))
    add("agent_message", field(5, field(1, "scan-1") + field(2, "no content")))
    add("agent_message", field(7, field(1, b"\x30\x03\x02\x01\x00")))
    enroll = (field(1, "token") + field(2, b"\x30\x00") + field(3, "host") + field(4, label)
              + field(5, "i-1") + field(6, "aws")
              + field(7, field(1, "aws") + field(2, b"{}") + field(3, b"sig")))
    add("agent_message", enroll)


def os_release_seeds():
    add("os_release", 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
        'ID=ubuntu\nID_LIKE=debian\n')
    add("os_release", 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\n'
        "ID_LIKE='fedora'\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n# c\n")


def write(keep):
    for target, datas in sorted(seeds.items()):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for n in os.listdir(d):
            if n.startswith("seed-") and target not in keep:
                os.remove(os.path.join(d, n))
        for data in datas:
            name = "seed-" + hashlib.sha1(data).hexdigest()
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(datas)} seeds")


fixtures()
os_release_seeds()
message_seeds()
have_rpm = rpm_seeds()
write(keep=set() if have_rpm else {"rpm_header", "rpmdb_sqlite"})
