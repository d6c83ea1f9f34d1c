#!/usr/bin/env python3
"""Converts old-format benchmark content (one directory per benchmark, rules keyed by
CIS number, derived benchmarks as `from` pointers) into content keyed by rule:

  agent/content/rules/<topic>.toml        one table per rule, keyed by its slug
  agent/content/benchmarks/<id>.toml      identity, sections, controls (CIS ID -> slug)
  agent/tests/fixtures/<topic>[.<benchmark>].toml   cases keyed by slug

Deterministic: the same old files and slug table give the same output, byte for byte.
Slugs come from scripts/reshape-content.slugs.toml (old CIS ID -> slug, per
benchmark); an ID missing there gets a slug derived from its title, with a warning,
so that it can be added to the table.

    python3 scripts/reshape-content.py [--from OLD_ROOT] [--to NEW_ROOT] [--delete-old]

OLD_ROOT is a checkout holding agent/content/<benchmark>/{benchmark.toml,*.toml} and
agent/tests/fixtures/<benchmark>/*.toml (default: this repository). The generated
directories under NEW_ROOT (default: this repository) are replaced wholesale.
--delete-old removes the old-format directories from NEW_ROOT afterwards.
Python 3.11+ standard library only.
"""

import argparse
import json
import re
import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SLUGS = REPO / "scripts" / "reshape-content.slugs.toml"
TEXT = ("title", "description", "remediation")
# Fields a derived benchmark may override on a rule; they become a variant.
VARIANT_FIELDS = ("title", "description", "remediation", "severity", "severity_reason", "check")
STOP = {"the", "a", "an", "is", "are", "and", "by", "with", "its", "their", "to", "of",
        "in", "on", "at", "be", "it", "for", "from", "that", "as", "or", "only", "cannot"}


def warn(msg):
    print(f"reshape-content: warning: {msg}", file=sys.stderr)


def die(msg):
    print(f"reshape-content: error: {msg}", file=sys.stderr)
    sys.exit(1)


def words(text):
    return [w for w in re.sub(r"[^a-z0-9]+", " ", text.lower()).split() if w]


def fallback_slug(title):
    """A readable slug from a title: lower-case words, filler words dropped, at most 7."""
    ws = [w for w in words(title) if w not in STOP][:7]
    return "_".join(ws) or "rule"


def topic_of(sections, cis_id):
    """The topic file of a rule: its second-level section's title (e.g. `ssh_server`)."""
    parts = cis_id.split(".")
    for n in (2, 1):
        key = ".".join(parts[:n])
        if len(parts) > n - 1 and key in sections:
            return "_".join(words(sections[key]))
    die(f"no section covers {cis_id}")


def id_key(cis_id):
    return [int(p) for p in cis_id.split(".")]


# ------------------------------------------------------------------ TOML writing

def tstr(s):
    return json.dumps(s, ensure_ascii=False)


def tval(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return tstr(v)
    if isinstance(v, list):
        return "[" + ", ".join(tval(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{tkey(k)} = {tval(x)}" for k, x in v.items()) + " }"
    die(f"cannot write {v!r}")


def tkey(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else tstr(k)


def ttext(s):
    """A text field: one line as a basic string, several as a multi-line literal."""
    if "\n" not in s.strip("\n") or "'''" in s:
        return tstr(s)
    # A newline right after the opening quotes is trimmed by TOML.
    return "'''\n" + s + "'''"


def field(k, v):
    if k in TEXT or k == "severity_reason":
        return f"{k} = {ttext(v)}"
    return f"{k} = {tval(v)}"


# ------------------------------------------------------------------ old format

def comments_by_rule(text):
    """Comment lines of an old rule file, attached to the rule they precede or sit in."""
    out = {}
    chunks = re.split(r"(?m)^\[\[rule\]\]\s*$", text)
    pending = []
    for chunk in chunks[1:]:
        lines = chunk.split("\n")
        m = re.search(r'(?m)^id\s*=\s*"([^"]+)"', chunk)
        last = max((i for i, l in enumerate(lines) if l.strip() and not l.lstrip().startswith("#")),
                   default=-1)
        inner = [l.strip() for l in lines[: last + 1] if l.lstrip().startswith("#")]
        trailing = [l.strip() for l in lines[last + 1:] if l.lstrip().startswith("#")
                    and not re.match(r"#\s*-{4,}", l.strip())]
        if m:
            out[m.group(1)] = pending + inner
        pending = trailing
    return out


def load_old(root):
    content = root / "agent" / "content"
    benches = {}
    for d in sorted(p for p in content.iterdir() if (p / "benchmark.toml").is_file()):
        head = tomllib.loads((d / "benchmark.toml").read_text())
        rules, comments = [], {}
        for f in sorted(d.glob("*.toml")):
            if f.name == "benchmark.toml":
                continue
            text = f.read_text()
            comments.update(comments_by_rule(text))
            rules.extend(tomllib.loads(text).get("rule", []))
        rules.sort(key=lambda r: id_key(r["id"]))
        benches[head["id"]] = {"head": head, "rules": rules, "comments": comments, "dir": d.name}
    # Base benchmarks first.
    order = sorted(benches, key=lambda b: (benches[b]["head"].get("base") is not None, b))
    return {b: benches[b] for b in order}


# ------------------------------------------------------------------ conversion

class Converter:
    def __init__(self, old, table):
        self.old = old
        self.table = table
        self.rules = {}  # slug -> {"topic", "fields", "comments", "variants": {bench: {...}}}
        self.controls = {b: [] for b in old}  # bench -> [(id, entry)]
        self.slug_of = {b: {} for b in old}  # bench -> cis id -> slug
        self.used = set()

    def slug(self, bench, rule):
        want = self.table.get(bench, {}).get(rule["id"])
        if want is None:
            want = fallback_slug(rule["title"])
            base, n = want, 2
            while want in self.used and self.rules.get(want, {}).get("fields", {}).get("title") != rule["title"]:
                want, n = f"{base}_{n}", n + 1
            warn(f"{bench} {rule['id']} has no slug in {SLUGS.name}; using `{want}`")
        return want

    def run(self):
        for bench, b in self.old.items():
            base = b["head"].get("base")
            base_rules = {r["id"]: r for r in self.old[base]["rules"]} if base else {}
            for r in b["rules"]:
                self.one(bench, b, r, base, base_rules)
        self.fold_variants()

    def profiles(self, r):
        return {k: r["profiles"][k] for k in ("server", "workstation") if k in r["profiles"]}

    def one(self, bench, b, r, base, base_rules):
        parent = None
        if "from" in r:
            if r["from"] not in base_rules:
                die(f"{bench} {r['id']}: from {r['from']} is not a rule of {base}")
            parent = base_rules[r["from"]]
        merged = dict(parent or {})
        merged.update({k: v for k, v in r.items() if k != "from"})
        if parent is not None and r.get("automated") is False:
            merged.pop("check", None)
        comments = b["comments"].get(r["id"], [])
        entry = {"profiles": self.profiles(r)}
        if not merged.get("automated"):
            entry["manual"] = {k: merged[k] for k in (*TEXT, "severity", "severity_reason") if k in merged}
            entry["comments"] = comments
            self.controls[bench].append((r["id"], entry))
            return
        if parent is not None and parent["id"] in self.slug_of[base]:
            slug = self.slug_of[base][parent["id"]]
            rule = self.rules[slug]
            # A check the derived benchmark restates stays its own (so do its fixtures:
            # the base's cases may depend on the base's OS).
            variant = {k: merged[k] for k in VARIANT_FIELDS
                       if k in merged and (merged[k] != rule["fields"].get(k) or k == "check" and k in r)}
            if variant:
                rule["variants"][bench] = variant
            entry["comments"] = comments
        else:
            slug = self.slug(bench, r)
            fields = {k: merged[k] for k in (*TEXT, "severity", "severity_reason", "check") if k in merged}
            if slug in self.rules:
                # A derived benchmark's own rule for a concept already defined.
                rule = self.rules[slug]
                variant = {k: v for k, v in fields.items() if rule["fields"].get(k) != v}
                if variant:
                    rule["variants"][bench] = variant
            else:
                # Topics follow the base benchmark's section titles where it has the section.
                sections = {**b["head"]["sections"], **(self.old[base]["head"]["sections"] if base else {})}
                topic = topic_of(sections, r["id"])
                self.rules[slug] = {"topic": topic, "fields": fields, "comments": comments,
                                    "variants": {}}
                self.used.add(slug)
            entry["comments"] = []
        entry["rule"] = slug
        self.slug_of[bench][r["id"]] = slug
        self.controls[bench].append((r["id"], entry))

    def fold_variants(self):
        """Identical variants of every benchmark of one OS that uses the rule become one
        variant keyed by the OS (`ubuntu`)."""
        os_of = {b: v["head"]["os_id"] for b, v in self.old.items()}
        users = {}
        for bench, ctrls in self.controls.items():
            for _, e in ctrls:
                if "rule" in e:
                    users.setdefault(e["rule"], set()).add(bench)
        for slug, rule in self.rules.items():
            v = rule["variants"]
            for os_id in sorted({os_of[b] for b in v}):
                benches = sorted(b for b in users.get(slug, ()) if os_of[b] == os_id)
                if len(benches) > 1 and all(b in v for b in benches) and \
                        all(v[b] == v[benches[0]] for b in benches):
                    shared = v[benches[0]]
                    for b in benches:
                        del v[b]
                    v[os_id] = shared

    def check_variant(self, bench, slug):
        v = self.rules[slug]["variants"]
        for key in (bench, self.old[bench]["head"]["os_id"]):
            if key in v:
                return key if "check" in v[key] else None
        return None

    # -------------------------------------------------------------- writing

    def write_rules(self, out):
        topics = {}
        for slug, rule in self.rules.items():
            topics.setdefault(rule["topic"], []).append(slug)
        for topic, slugs in sorted(topics.items()):
            lines = [f"# Rules on {topic.replace('_', ' ')}. Generated by scripts/reshape-content.py;",
                     "# see ../README.md for the format.", ""]
            for slug in slugs:
                rule = self.rules[slug]
                lines += rule["comments"]
                lines.append(f"[{slug}]")
                for k, val in rule["fields"].items():
                    lines.append(field(k, val))
                lines.append("")
                for key, var in sorted(rule["variants"].items()):
                    lines.append(f"[{slug}.variants.{tkey(key)}]")
                    for k, val in var.items():
                        lines.append(field(k, val))
                    lines.append("")
            (out / f"{topic}.toml").write_text("\n".join(lines).rstrip("\n") + "\n")

    def write_benchmarks(self, out):
        for bench, b in self.old.items():
            h = b["head"]
            lines = [f"# {h['title']}, as implemented by Rampart. Section titles are ours.",
                     "# Generated by scripts/reshape-content.py; see ../README.md for the format.",
                     f"id = {tstr(h['id'])}", f"title = {tstr(h['title'])}",
                     f"version = {tstr(h['version'])}", f"os_id = {tstr(h['os_id'])}",
                     f"os_versions = {tval(h['os_versions'])}", "", "[sections]"]
            lines += [f"{tstr(k)} = {tstr(v)}" for k, v in sorted(h["sections"].items(), key=lambda kv: id_key(kv[0]))]
            lines += ["", "# Automated recommendations: CIS ID -> rule slug and profile levels.", "[controls]"]
            manual = []
            for cis_id, e in self.controls[bench]:
                if "manual" in e:
                    manual.append((cis_id, e))
                    continue
                lines += e["comments"]
                lines.append(f"{tstr(cis_id)} = {tval({'rule': e['rule'], **e['profiles']})}")
            lines += ["", "# Manual recommendations: reported not_checked, never scored."]
            for cis_id, e in manual:
                lines.append("")
                lines += e["comments"]
                lines.append(f"[manual.{tstr(cis_id)}]")
                lines += [f"{k} = {tval(v)}" for k, v in e["profiles"].items()]
                lines += [field(k, v) for k, v in e["manual"].items()]
            (out / f"{bench}.toml").write_text("\n".join(lines) + "\n")

    def write_fixtures(self, old_root, out):
        base_bench = next(b for b, v in self.old.items() if "base" not in v["head"])
        for bench, b in self.old.items():
            d = old_root / "agent" / "tests" / "fixtures" / b["dir"]
            if not d.is_dir():
                continue
            for f in sorted(d.glob("*.toml")):
                section = f.stem.replace("-", ".")
                sections = b["head"]["sections"]
                name = "_".join(words(sections[section])) if section in sections else f.stem
                if bench != base_bench:
                    name += f".{bench}"
                text = f.read_text()
                n_cases = len(tomllib.loads(text).get("case", []))

                def repl(m):
                    cis_id = m.group(2)
                    slug = self.slug_of[bench].get(cis_id)
                    if slug is None:
                        # A manual control has no rule: the case names the control.
                        return f'{m.group(1)}control = "{cis_id}"\n{m.group(1)}benchmarks = ["{bench}"]'
                    line = f'{m.group(1)}rule = "{slug}"'
                    if bench != base_bench:
                        line += f'\n{m.group(1)}benchmarks = ["{bench}"]'
                    elif self.check_variant(bench, slug):
                        die(f"{f}: {cis_id} has a check variant in its own benchmark")
                    return line

                new, n = re.subn(r'(?m)^(\s*)rule\s*=\s*"([0-9.]+)"\s*$', repl, text)
                if n != n_cases:
                    die(f"{f}: rewrote {n} of {n_cases} cases (write `rule = \"…\"` on its own line)")
                (out / f"{name}.toml").write_text(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", type=Path, default=REPO)
    ap.add_argument("--to", dest="dst", type=Path, default=REPO)
    ap.add_argument("--delete-old", action="store_true")
    a = ap.parse_args()
    table = tomllib.loads(SLUGS.read_text()) if SLUGS.is_file() else {}
    old = load_old(a.src)
    if not old:
        die(f"no old-format benchmarks under {a.src}/agent/content")
    c = Converter(old, table)
    c.run()
    content = a.dst / "agent" / "content"
    fixtures = a.dst / "agent" / "tests" / "fixtures"
    for d in (content / "rules", content / "benchmarks"):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for f in fixtures.glob("*.toml") if fixtures.is_dir() else ():
        f.unlink()
    fixtures.mkdir(parents=True, exist_ok=True)
    c.write_rules(content / "rules")
    c.write_benchmarks(content / "benchmarks")
    c.write_fixtures(a.src, fixtures)
    if a.delete_old:
        for b in old.values():
            shutil.rmtree(content / b["dir"], ignore_errors=True)
            shutil.rmtree(fixtures / b["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
