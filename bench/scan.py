#!/usr/bin/env python3
"""Speed and weight of `rampart-agent check`: wall time, CPU time and peak RSS of
scans of the cached Debian 12 root (level2-server), of the RHEL 9 and Amazon Linux 2023
roots with a real rpm database (tests/fixtures/build-rpm-root.sh), and of this live machine.

Usage: python3 bench/scan.py [--runs N] [--root DIR] [--binary PATH]
Builds the static musl release agent unless --binary is given. Prints one table
and the binary's size. Targets (issue 2): < 0.5 s wall, < 30 MB peak RSS, < 10 MB binary.
"""
import argparse, os, resource, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUSL = "x86_64-unknown-linux-musl"


def build():
    # The static agent needs the musl target and musl-gcc (ring compiles C).
    installed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True).stdout
    if MUSL not in installed:
        subprocess.run(["rustup", "target", "add", MUSL], check=True)
    if subprocess.run(["sh", "-c", "command -v musl-gcc"], capture_output=True).returncode != 0:
        sys.exit("bench needs musl-gcc: apt-get install musl-tools")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "rampart-agent", "--target", MUSL],
                   cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", MUSL, "release", "rampart-agent")


def run_once(argv):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, rusage = os.wait4(p.pid, 0)[1:]
    wall = time.perf_counter() - t0
    cpu = rusage.ru_utime + rusage.ru_stime
    return wall, cpu, rusage.ru_maxrss / 1024.0  # KiB -> MiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--root")
    ap.add_argument("--binary")
    a = ap.parse_args()
    binary = a.binary or build()
    root = a.root or os.environ.get("RAMPART_DEBIAN_ROOT") or subprocess.run(
        ["bash", os.path.join(ROOT, "tests/fixtures/build-debian-root.sh")],
        check=True, capture_output=True, text=True).stdout.strip()
    def rpm_root(distro, var):
        return os.environ.get(var) or subprocess.run(
            ["bash", os.path.join(ROOT, "tests/fixtures/build-rpm-root.sh"), distro],
            check=True, capture_output=True, text=True).stdout.strip()
    rhel, al = rpm_root("rhel-9", "RAMPART_RHEL9_ROOT"), rpm_root("al2023", "RAMPART_AL2023_ROOT")
    cases = [
        (f"debian-12 root, level2-server", [binary, "check", "--root", root, "--profile", "level2-server", "--format", "json"]),
        ("same root as ubuntu-22.04, level2", [binary, "check", "--root", root, "--profile", "level2-server", "--format", "json", "--benchmark", "ubuntu-22.04"]),
        ("same root as ubuntu-24.04, level2", [binary, "check", "--root", root, "--profile", "level2-server", "--format", "json", "--benchmark", "ubuntu-24.04"]),
        ("rhel-9 root, level2-server", [binary, "check", "--root", rhel, "--profile", "level2-server", "--format", "json"]),
        ("al2023 root, level2-server", [binary, "check", "--root", al, "--profile", "level2-server", "--format", "json"]),
        ("live host, level2-server", [binary, "check", "--profile", "level2-server", "--format", "json", "--benchmark", "debian-12"]),
    ]
    print(f"binary {binary}: {os.path.getsize(binary) / 1e6:.2f} MB")
    print(f"{'case':34} {'runs':>4} {'wall median':>12} {'wall max':>9} {'cpu median':>11} {'peak RSS':>9}")
    for name, argv in cases:
        run_once(argv)  # warm the page cache
        rows = [run_once(argv) for _ in range(a.runs)]
        walls, cpus, rss = zip(*rows)
        print(f"{name:34} {a.runs:>4} {statistics.median(walls):>10.3f} s {max(walls):>7.3f} s "
              f"{statistics.median(cpus):>9.3f} s {max(rss):>6.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
