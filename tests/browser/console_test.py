#!/usr/bin/env python3
"""The web console in a real browser (docs/console.md, issue 12).

Driven by tests/tests/console.rs, which starts a real collector with an enrolled agent
and a blocked scan, creates one user per role, and passes everything through the
environment:

  RAMPART_CONSOLE_URL            http://127.0.0.1:PORT (the collector's REST port)
  RAMPART_{VIEWER,USER,PROVISIONER,ADMIN}_NAME / _PASSWORD   one user per role
  RAMPART_SCAN_ID, RAMPART_AGENT_ID   the blocked scan and its agent
  RAMPART_AGENT_PID              the agent daemon's process (held with SIGSTOP)
  RAMPART_PROJECT                the agent's project
  RAMPART_ADMIN_TOKEN            an admin API token, to compare with the REST API
  RAMPART_HOSTILE_HOST           the agent's host name (markup and quotes)
  RAMPART_HOSTILE_RULE, RAMPART_HOSTILE_EVIDENCE   a rule whose evidence quotes a
                                 hostile file line (markup, quotes, a control character)
  RAMPART_AXE_JS                 axe-core's axe.min.js
  RAMPART_OUT_DIR                where screenshots and HTML of failures go
  RAMPART_CONSOLE_SCREENSHOT     optional: write the admin's Overview there (1280x800)
  RAMPART_CHROMIUM               optional: the Chromium binary (/usr/lib/chromium/chromium)

Plain Python and Playwright's sync API. Every check runs even when one before it failed
(where it does not depend on it); the exit status is 1 when any failed. Nothing is
fetched from anywhere but the collector and this script's own loopback server.
"""

import csv
import functools
import http.client
import http.server
import io
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import sync_playwright

BASE = os.environ["RAMPART_CONSOLE_URL"].rstrip("/")
ROLES = {
    role: (
        os.environ[f"RAMPART_{role.upper()}_NAME"],
        os.environ[f"RAMPART_{role.upper()}_PASSWORD"],
    )
    for role in ("viewer", "user", "provisioner", "admin")
}
SCAN_ID = os.environ["RAMPART_SCAN_ID"]
AGENT_ID = os.environ["RAMPART_AGENT_ID"]
# The agent daemon's process: stopped and continued to hold a scan pending.
AGENT_PID = int(os.environ["RAMPART_AGENT_PID"])
PROJECT = os.environ["RAMPART_PROJECT"]
ADMIN_TOKEN = os.environ["RAMPART_ADMIN_TOKEN"]
HOSTILE_HOST = os.environ["RAMPART_HOSTILE_HOST"]
HOSTILE_RULE = os.environ["RAMPART_HOSTILE_RULE"]
HOSTILE_EVIDENCE = os.environ["RAMPART_HOSTILE_EVIDENCE"]
AXE_JS = os.environ["RAMPART_AXE_JS"]
OUT_DIR = os.environ["RAMPART_OUT_DIR"]
SCREENSHOT = os.environ.get("RAMPART_CONSOLE_SCREENSHOT", "")
CHROMIUM = os.environ.get("RAMPART_CHROMIUM", "/usr/lib/chromium/chromium")

# Debian's /usr/bin/chromium is a wrapper script; Playwright needs the binary. It adds
# --headless, --no-sandbox and a fresh temporary --user-data-dir itself (and refuses a
# --user-data-dir here); every browser context below is a fresh, cookie-less profile.
# Names other than localhost and 127.0.0.1 do not resolve: nothing can leave the host.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

SESSION_COOKIE = "__Host-rampart_session"
CSV_HEADER = (
    "scan_id,agent_id,host,provider,project,status,score,blocked,released_by,"
    "critical_failed,high_failed,created_at,finished_at"
).split(",")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# The part of the hostile evidence that must be visible verbatim: markup and quotes.
# (The control character may be shown escaped; it is checked to be harmless, not
# verbatim.)
EVIDENCE_MARKUP = "<script>alert(1)</script>\"'"

# Reports every CSP violation to the console, where the listeners below see it.
# Init scripts are injected by the browser, so the page's CSP does not apply to them.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " +
    (e.blockedURI || "inline") + " at " + (e.sourceFile || document.URL) + ":" + e.lineNumber);
});
"""


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(cond, message):
    if not cond:
        raise CheckFailed(message)


class Run:
    """Runs named checks, keeps what the browser reported, saves evidence of failures."""

    def __init__(self, browser):
        self.browser = browser
        self.passed = []
        self.failed = []
        self.last_page = None
        # Browser-side problems: console errors, CSP violations, page errors, dialogs,
        # requests leaving the collector's origin. Each as (what, where): a check fails
        # on a `what` not seen before; the last check lists them all.
        self.problems = []
        # URLs whose 4xx answer is the point of a check: Chromium logs "Failed to load
        # resource" for a document with an error status, which is expected there.
        self.expected_error_urls = set()
        self.forge_origins = set()
        self.artifacts = 0
        # Problems up to here were reported with a check already.
        self.reported = 0

    # ---- contexts and pages

    def context(self, *, bypass_csp=False, color_scheme="light", javascript=True, width=1280):
        ctx = self.browser.new_context(
            bypass_csp=bypass_csp,
            color_scheme=color_scheme,
            java_script_enabled=javascript,
            viewport={"width": width, "height": 800 if width >= 800 else 844},
        )
        ctx.set_default_timeout(20_000)
        ctx.set_default_navigation_timeout(30_000)
        label = f"{color_scheme}{', CSP bypassed for axe' if bypass_csp else ''}"
        if not bypass_csp:
            ctx.add_init_script(CSP_LISTENER)
        ctx.on("page", lambda page: self.watch(page, label))
        ctx.on("request", lambda req: self.on_request(req, label))
        return ctx

    def watch(self, page, label):
        page.on("console", lambda msg: self.on_console(page, msg, label))
        page.on(
            "pageerror",
            lambda err: self.problems.append((f"page error: {err}", f"{page.url} ({label})")),
        )

        def on_dialog(dialog):
            self.problems.append(
                (f"a {dialog.type} dialog fired: {dialog.message!r}", f"{page.url} ({label})")
            )
            dialog.dismiss()

        page.on("dialog", on_dialog)

    def on_console(self, page, msg, label):
        if msg.type not in ("error", "assert"):
            return
        where = (msg.location or {}).get("url") or page.url
        if (
            msg.text.startswith("Failed to load resource: the server responded with a status of 4")
            and where in self.expected_error_urls
        ):
            return
        self.problems.append((f"console {msg.type}: {msg.text} [{where}]", f"{page.url} ({label})"))

    def on_request(self, req, label):
        url = req.url
        if url.startswith(BASE + "/") or url == BASE or url.startswith("data:"):
            return
        if any(url.startswith(o) for o in self.forge_origins) or url == "about:blank":
            return
        self.problems.append((f"a request to another origin: {req.method} {url}", label))

    # ---- checks

    def check(self, name, fn, *args):
        start = time.monotonic()
        try:
            fn(*args)
            seen = {what for what, _ in self.problems[: self.reported]}
            new = {}
            for what, where in self.problems[self.reported :]:
                if what not in seen:
                    new.setdefault(what, where)
            self.reported = len(self.problems)
            expect(
                not new,
                "the browser reported:\n     "
                + "\n     ".join(f"{what} (first on {where})" for what, where in new.items()),
            )
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.reported = len(self.problems)
            detail = str(e) if isinstance(e, CheckFailed) else traceback.format_exc()
            saved = self.save_page(name)
            self.failed.append((name, detail, saved))
            print(f"FAIL {name} ({time.monotonic() - start:.1f} s)\n     {detail}", flush=True)
            for p in saved:
                print(f"     saved {p}", flush=True)
            return False
        self.passed.append(name)
        print(f"ok   {name} ({time.monotonic() - start:.1f} s)", flush=True)
        return True

    def no_problems(self):
        counts = {}
        for what, where in self.problems:
            counts.setdefault(what, [0, where])[0] += 1
        expect(
            not counts,
            f"the browser reported {len(counts)} kind(s) of problem:\n     "
            + "\n     ".join(
                f"{n}x {what} (first on {where})" for what, (n, where) in counts.items()
            ),
        )

    def save_page(self, name):
        page = self.last_page
        if page is None or page.is_closed():
            return []
        self.artifacts += 1
        stem = os.path.join(
            OUT_DIR, f"{self.artifacts:02d}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        )
        saved = []
        try:
            page.screenshot(path=stem + ".png", full_page=True)
            saved.append(stem + ".png")
        except Exception as e:  # noqa: BLE001
            print(f"     (no screenshot: {e})")
        try:
            with open(stem + ".html", "w", encoding="utf-8") as f:
                f.write(f"<!-- {page.url} -->\n" + page.content())
            saved.append(stem + ".html")
        except Exception as e:  # noqa: BLE001
            print(f"     (no HTML: {e})")
        return saved

    def save_text(self, name, text):
        self.artifacts += 1
        path = os.path.join(OUT_DIR, f"{self.artifacts:02d}-{name}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    # ---- navigation

    def goto(self, page, path, status=200):
        url = path if path.startswith("http") else BASE + path
        if status >= 400:
            self.expected_error_urls.add(url)
        self.last_page = page
        resp = page.goto(url)
        got = resp.status if resp else None
        expect(got == status, f"GET {path}: status {got}, expected {status} (now at {page.url})")
        return resp

    def submit(self, page, form, status=200):
        """Submits `form` with its submit button, as a user would; returns the final
        response (after redirects)."""
        self.last_page = page
        action = page.eval_on_selector(form, "f => f.action")
        if status >= 400:
            self.expected_error_urls.add(action)
        button = page.locator(
            f"{form} button:not([type=button]):not([type=reset]), {form} input[type=submit]"
        ).first
        expect(button.count() == 1, f"{form} has no submit button")
        with page.expect_navigation() as nav:
            button.click()
        resp = nav.value
        got = resp.status if resp else None
        expect(
            got == status, f"submitting {form}: status {got}, expected {status} (now at {page.url})"
        )
        return resp

    def submit_any(self, page, form):
        """Submits `form`; any status will do (the caller looks at the page)."""
        self.last_page = page
        self.expected_error_urls.add(page.eval_on_selector(form, "f => f.action"))
        button = page.locator(
            f"{form} button:not([type=button]):not([type=reset]), {form} input[type=submit]"
        ).first
        with page.expect_navigation() as nav:
            button.click()
        return nav.value


# ---- the REST API, as admin (for comparisons)


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode("utf-8", "replace")


def api_ok(method, path, body=None):
    code, v = api(method, path, body)
    expect(200 <= code < 300, f"{method} {path}: {code} {v}")
    return v


def api_scan(sid):
    """The scan as `GET /api/v1/scans/{id}` shows it (without its results)."""
    return api_ok("GET", f"/api/v1/scans/{sid}")["scan"]


def api_scans(query):
    """Every scan the API lists for `query`, following `next`."""
    out = []
    q = dict(query, per_page=1)
    while True:
        page = api_ok("GET", "/api/v1/scans?" + urlencode(q))
        out.extend(page["scans"])
        if not page.get("next"):
            return out
        q["before"] = page["next"]


def raw_get(path, cookie=None):
    """A GET without a browser and without following redirects: (status, headers, body)."""
    u = urlsplit(BASE)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


# ---- page helpers


def path_of(page):
    return urlsplit(page.url).path


def query_of(page):
    return parse_qs(urlsplit(page.url).query)


def signed_in_chrome(page, role):
    name = ROLES[role][0]
    expect(
        page.locator("nav[aria-label=Main]").count() == 1, f"{page.url}: no nav[aria-label=Main]"
    )
    expect(page.locator("#whoami").count() == 1, f"{page.url}: no #whoami")
    who = page.locator("#whoami").inner_text()
    expect(
        name in who and role in who.lower(),
        f"{page.url}: #whoami says {who!r}, expected {name} and {role}",
    )
    expect(page.locator("form#signout").count() == 1, f"{page.url}: no form#signout")
    action = page.eval_on_selector("form#signout", "f => f.action")
    method = page.eval_on_selector("form#signout", "f => f.method")
    expect(
        action == BASE + "/ui/logout" and method == "post",
        f"form#signout posts to {method} {action}, expected POST /ui/logout",
    )


def forbidden(page):
    h1 = page.locator("h1")
    expect(h1.count() >= 1, f"{page.url}: the 403 page has no h1")
    expect(
        h1.first.inner_text().strip() == "Forbidden",
        f"{page.url}: h1 is {h1.first.inner_text()!r}, expected Forbidden",
    )


def on_login_page(page, next_path=None):
    expect(path_of(page) == "/ui/login", f"expected the sign-in page, got {page.url}")
    expect(page.locator("form#login").count() == 1, f"{page.url}: no form#login")
    if next_path is not None:
        field = page.locator("form#login input[name=next]")
        expect(field.count() == 1, "form#login has no `next` field")
        expect(field.get_attribute("type") == "hidden", "form#login's `next` is not hidden")
        got = field.get_attribute("value")
        expect(got == next_path, f"form#login's next is {got!r}, expected {next_path!r}")


def sign_in(run, page, role, landing="/ui/"):
    name, password = ROLES[role]
    run.goto(page, "/ui/login")
    page.fill("form#login input[name=name]", name)
    page.fill("form#login input[name=password]", password)
    csrf = page.locator("form#login input[name=csrf]")
    expect(
        csrf.count() == 1 and csrf.get_attribute("type") == "hidden",
        "form#login has no hidden csrf field",
    )
    run.submit(page, "form#login")
    expect(
        path_of(page) == landing, f"{role} signed in and landed on {page.url}, expected {landing}"
    )
    signed_in_chrome(page, role)


def sign_out(run, page):
    run.submit(page, "form#signout")
    expect(
        page.locator("#whoami").count() == 0, f"after signing out {page.url} still shows #whoami"
    )
    run.goto(page, "/ui/scans")
    on_login_page(page)


def csrf_of(page, form="form#signout"):
    field = page.locator(f"{form} input[name=csrf]")
    expect(field.count() == 1, f"{form} on {page.url} has no csrf field")
    expect(field.get_attribute("type") == "hidden", f"{form}'s csrf field is not hidden")
    value = field.get_attribute("value") or ""
    expect(len(value) >= 16, f"{form}'s csrf value is {value!r}")
    return value


def form_fields(page, form):
    """The name/value pairs the browser would submit for `form` (FormData)."""
    entries = page.eval_on_selector(form, "f => Array.from(new FormData(f).entries())")
    return [(k, v) for k, v in entries]


def set_field(page, form, name, value):
    field = page.locator(f"{form} [name={name}]").first
    expect(field.count() == 1, f"{form} has no field named {name}")
    tag = field.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    if tag.startswith("select"):
        field.select_option(value)
    elif tag in ("input:checkbox", "input:radio"):
        page.locator(f"{form} [name={name}][value='{value}']").check()
    else:
        field.fill(value)


def beyond_browser_checks(page, form, name):
    """If the browser itself refuses the field's value (min/max/required), turns its
    form validation off, as a request made without the page would be: the server must
    refuse the value on its own."""
    field = f"{form} [name={name}]"
    if not page.eval_on_selector(field, "e => e.checkValidity()"):
        page.eval_on_selector(form, "f => { f.noValidate = true; }")


def field_value(page, form, name):
    field = page.locator(f"{form} [name={name}]").first
    return field.input_value() if field.count() else None


def rows(page, table):
    return page.eval_on_selector_all(
        f"table#{table} tr[data-scan-id]", "rs => rs.map(r => r.dataset.scanId)"
    )


def all_rows(run, page):
    """table#scans' scan IDs on this page and the pages after it (a[rel=next])."""
    start = page.url
    got = rows(page, "scans")
    hops = 0
    while page.locator("a[rel=next]").count() and hops < 100:
        run.last_page = page
        with page.expect_navigation():
            page.locator("a[rel=next]").first.click()
        got += rows(page, "scans")
        hops += 1
    if hops:
        run.goto(page, start)
    return got


def visible_text(page):
    return page.locator("body").inner_text()


def no_hostile_script(page):
    scripts = page.eval_on_selector_all("script", "ss => ss.map(s => s.textContent)")
    expect(
        not any("alert(" in s for s in scripts),
        f"{page.url}: a script element holds the hostile text",
    )
    expect(
        page.locator("img[src*='evil'], [onerror], [onload]").count() == 0,
        f"{page.url}: injected markup",
    )


def fmt_score(v):
    return "" if v is None else f"{v:.1f}"


# ---- the checks


def unsigned(run):
    ctx = run.context()
    page = ctx.new_page()
    r = ctx.request.get(BASE + "/", max_redirects=0)
    expect(300 <= r.status < 400, f"GET /: status {r.status}, expected a redirect")
    loc = r.headers.get("location", "")
    expect(loc in ("/ui/", BASE + "/ui/"), f"GET / redirects to {loc!r}, expected /ui/")
    run.goto(page, "/")
    expect(
        path_of(page) in ("/ui/", "/ui/login"),
        f"/ for an unsigned browser ends at {page.url}",
    )
    run.goto(page, "/ui/scans")
    on_login_page(page, next_path="/ui/scans")
    expect(SCAN_ID not in page.content(), "the sign-in page shows scan data")
    # A wrong password: an alert, still the sign-in page, no session.
    page.fill("form#login input[name=name]", ROLES["admin"][0])
    page.fill("form#login input[name=password]", "not-the-password-at-all")
    run.submit_any(page, "form#login")
    expect(page.locator("[role=alert]").count() >= 1, "a wrong password shows no [role=alert]")
    expect(page.locator("form#login").count() == 1, "a wrong password leaves the sign-in form")
    expect(
        not any(c["name"] == SESSION_COOKIE for c in ctx.cookies(BASE)),
        "a wrong password set a session cookie",
    )
    run.goto(page, "/ui/scans")
    on_login_page(page)
    # A browser that stays on a page asks for /favicon.ico unless the page names an
    # icon; a 404 there is a console error on every page. (Headless Chromium asks only
    # now and then before the next navigation, so this is checked directly.)
    if page.locator("link[rel~=icon]").count() == 0:
        r = ctx.request.get(BASE + "/favicon.ico", max_redirects=0)
        expect(
            r.status < 400,
            f"the pages name no icon and GET /favicon.ico answers {r.status}: browsers log"
            " that as a console error on every page",
        )
    ctx.close()


def no_scan_data(run, role):
    ctx = run.context()
    page = ctx.new_page()
    sign_in(run, page, role)
    html = page.content()
    expect(page.locator("[data-scan-id]").count() == 0, f"{role}'s /ui/ lists scans")
    expect(
        page.locator("a.card[data-card]").count() == 0, f"{role}'s /ui/ shows the fleet's figures"
    )
    for secret in (SCAN_ID, AGENT_ID, HOSTILE_HOST, "alert(1)"):
        expect(
            secret not in html and secret not in visible_text(page),
            f"{role}'s /ui/ shows {secret!r}",
        )
    for path in (
        "/ui/scans",
        "/ui/scans?status=completed",
        f"/ui/scans/{SCAN_ID}",
        f"/ui/scans/{SCAN_ID}/release",
        "/ui/settings",
        "/ui/users",
        "/ui/audit",
    ):
        run.goto(page, path, 403)
        forbidden(page)
        expect(
            HOSTILE_HOST not in visible_text(page), f"{role}: the 403 page of {path} shows the host"
        )
    refused_downloads(ctx, role)
    refused_posts(run, ctx, page, role, release=True, settings=True)
    run.goto(page, "/ui/")
    sign_out(run, page)
    ctx.close()


def refused_downloads(ctx, role):
    for path in (
        "/ui/scans.csv",
        f"/ui/scans/{SCAN_ID}/report.html",
        f"/ui/scans/{SCAN_ID}/report.json",
        f"/ui/scans/{SCAN_ID}/report.arf.xml",
    ):
        r = ctx.request.get(BASE + path, max_redirects=0)
        expect(r.status == 403, f"{role}: GET {path} answered {r.status}, expected 403")
        expect(
            HOSTILE_HOST not in r.text() and EVIDENCE_MARKUP not in r.text(),
            f"{role}: {path} leaks scan data",
        )


def refused_posts(run, ctx, page, role, release, settings):
    """Same-origin POSTs with this session's csrf: the role decides, and refuses."""
    run.goto(page, "/ui/")
    csrf = csrf_of(page)
    before = api_ok("GET", "/api/v1/settings")
    if release:
        r = ctx.request.post(
            BASE + f"/ui/scans/{SCAN_ID}/release",
            form={"csrf": csrf},
            headers={"Origin": BASE},
            max_redirects=0,
        )
        expect(r.status == 403, f"{role}: POST release answered {r.status}, expected 403")
        scan = api_scan(SCAN_ID)
        expect(scan["released_by"] is None, f"{role} released the scan: {scan['released_by']}")
    if settings:
        form = {"csrf": csrf, "mode": "audit", "min_score": "12"}
        r = ctx.request.post(
            BASE + "/ui/settings", form=form, headers={"Origin": BASE}, max_redirects=0
        )
        expect(r.status == 403, f"{role}: POST /ui/settings answered {r.status}, expected 403")
        after = api_ok("GET", "/api/v1/settings")
        expect(after == before, f"{role} changed the settings: {before} -> {after}")


def overview_with_data(run, page, role):
    run.goto(page, "/ui/")
    signed_in_chrome(page, role)
    for card in ("average-score", "total-scans", "blocked", "pass-rate"):
        expect(
            page.locator(f"a.card[data-card={card}]").count() == 1,
            f"/ui/ as {role}: no a.card[data-card={card}]",
        )
    recent = rows(page, "recent")
    expect(SCAN_ID in recent, f"/ui/ as {role}: table#recent rows {recent} lack {SCAN_ID}")
    o = api_ok("GET", "/api/v1/overview")
    api_recent = [s["id"] for s in o["recent_scans"]]
    expect(
        sorted(api_recent) == sorted(recent),
        f"/ui/ as {role}: table#recent {recent} differs from the API's {api_recent}",
    )
    avg = page.locator("a.card[data-card=average-score]").inner_text()
    if o["average_score"] is not None:
        expect(
            f"{o['average_score']:.1f}" in avg,
            f"average-score card says {avg!r}, API {o['average_score']}",
        )
    blocked = page.locator("a.card[data-card=blocked]").inner_text()
    expect(
        str(o["vms_blocked"]) in blocked, f"blocked card says {blocked!r}, API {o['vms_blocked']}"
    )
    row = page.locator(f"table#recent tr[data-scan-id='{SCAN_ID}']")
    expect(
        HOSTILE_HOST in row.inner_text(),
        f"/ui/ as {role}: the recent row does not show the host name as text: {row.inner_text()!r}",
    )
    no_hostile_script(page)


def scan_detail(run, page, role, blocked):
    """The blocked scan's detail page; `blocked`: it still blocks the handover."""
    run.goto(page, f"/ui/scans/{SCAN_ID}")
    signed_in_chrome(page, role)
    detail = api_ok("GET", f"/api/v1/scans/{SCAN_ID}")
    scan = detail["scan"]
    h1 = page.locator("h1").first.inner_text()
    expect(
        HOSTILE_HOST in h1,
        f"scan detail h1 is {h1!r}, expected the host name {HOSTILE_HOST!r} as text",
    )
    reasons = page.locator("#block-reasons")
    expect(reasons.count() == 1, "a blocked scan's detail has no #block-reasons")
    for reason in scan["block_reasons"]:
        expect(
            reason in reasons.inner_text(),
            f"#block-reasons lacks {reason!r}: {reasons.inner_text()!r}",
        )
    got = page.eval_on_selector_all(
        "table#rules tr[data-rule-id][data-status]",
        "rs => rs.map(r => [r.dataset.ruleId, r.dataset.status])",
    )
    want = sorted([r["id"], r["status"]] for r in detail["results"])
    expect(len(got) == len(want), f"table#rules has {len(got)} rules, the API {len(want)}")
    expect(
        sorted(got) == want,
        "table#rules' rule IDs and statuses differ from the API's: "
        + str([g for g in sorted(got) if g not in want][:5]),
    )
    release = page.locator("a#release")
    if role == "admin" and blocked:
        expect(release.count() == 1, "an admin sees no a#release on a blocking scan")
    else:
        expect(release.count() == 0, f"{role} sees a#release (blocked={blocked})")
    # The hostile evidence is shown as text in its rule's row (opened as a user would
    # if it is folded away): markup and quotes verbatim, the control character either
    # kept or shown as an escape.
    row = page.locator(f"table#rules tr[data-rule-id='{HOSTILE_RULE}']")
    expect(row.count() == 1, f"table#rules has no row for {HOSTILE_RULE}")
    summary = row.locator("details > summary")
    if summary.count() and not row.locator("details").first.evaluate("d => d.open"):
        summary.first.click()
    text = row.inner_text()
    expect(
        EVIDENCE_MARKUP in text,
        f"the evidence of {HOSTILE_RULE} ({HOSTILE_EVIDENCE!r}) is not shown as text: {text!r}",
    )
    for part in re.split(r"[\x00-\x1f\x7f]", HOSTILE_EVIDENCE):
        expect(
            part.strip() in text,
            f"the evidence of {HOSTILE_RULE} is not shown verbatim: {part.strip()!r} is missing from {text!r}",
        )
    no_hostile_script(page)


def downloads(run, ctx, page, role):
    for fmt, kind in (("html", "text/html"), ("json", "application/json"), ("arf.xml", "xml")):
        path = f"/ui/scans/{SCAN_ID}/report.{fmt}"
        r = ctx.request.get(BASE + path, max_redirects=0)
        expect(r.status == 200, f"{role}: GET {path} answered {r.status}")
        expect(
            kind in r.headers.get("content-type", ""),
            f"{path}: content type {r.headers.get('content-type')}",
        )
        if fmt == "json":
            expect(SCAN_ID in r.text(), f"{path} does not name the scan")
    run.goto(page, f"/ui/scans/{SCAN_ID}")
    expect(
        page.locator(f"a[href$='/ui/scans/{SCAN_ID}/report.html']").count() >= 1,
        f"{role}: the scan detail has no link to its HTML report",
    )
    r = ctx.request.get(BASE + "/ui/scans.csv", max_redirects=0)
    expect(r.status == 200, f"{role}: GET /ui/scans.csv answered {r.status}")


def provisioner_sees_scans(run):
    ctx = run.context()
    page = ctx.new_page()
    sign_in(run, page, "provisioner")
    overview_with_data(run, page, "provisioner")
    run.goto(page, "/ui/scans")
    expect(SCAN_ID in rows(page, "scans"), "provisioner: table#scans lacks the scan")
    scan_detail(run, page, "provisioner", blocked=True)
    downloads(run, ctx, page, "provisioner")
    run.goto(page, "/ui/settings", 403)
    forbidden(page)
    run.goto(page, f"/ui/scans/{SCAN_ID}/release", 403)
    forbidden(page)
    for path in ("/ui/users", "/ui/audit"):
        run.goto(page, path, 403)
        forbidden(page)
    refused_posts(run, ctx, page, "provisioner", release=True, settings=True)
    sign_out(run, page)
    ctx.close()


class Admin:
    """One admin session shared by the admin's checks (in order)."""

    def __init__(self, run):
        self.run = run
        self.ctx = run.context()
        self.page = self.ctx.new_page()

    def sign_in_through_next(self):
        run, page = self.run, self.page
        run.goto(page, "/ui/scans")
        on_login_page(page, next_path="/ui/scans")
        name, password = ROLES["admin"]
        page.fill("form#login input[name=name]", name)
        page.fill("form#login input[name=password]", password)
        run.submit(page, "form#login")
        expect(path_of(page) == "/ui/scans", f"signing in from /ui/scans landed on {page.url}")
        signed_in_chrome(page, "admin")
        cookies = {c["name"]: c for c in self.ctx.cookies(BASE)}
        expect(SESSION_COOKIE in cookies, f"no {SESSION_COOKIE} cookie: {list(cookies)}")
        c = cookies[SESSION_COOKIE]
        expect(
            c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict" and c["path"] == "/",
            f"the session cookie's attributes: {c}",
        )
        expect(not c["domain"].startswith("."), f"a __Host- cookie has no Domain: {c['domain']}")

    def views(self):
        run, page = self.run, self.page
        overview_with_data(run, page, "admin")
        run.goto(page, "/ui/scans")
        expect(SCAN_ID in rows(page, "scans"), "admin: table#scans lacks the scan")
        row = page.locator(f"table#scans tr[data-scan-id='{SCAN_ID}']")
        expect(
            HOSTILE_HOST in row.inner_text(),
            f"table#scans row does not show the host as text: {row.inner_text()!r}",
        )
        no_hostile_script(page)
        scan_detail(run, page, "admin", blocked=True)
        downloads(run, self.ctx, page, "admin")
        run.goto(page, "/ui/settings")
        expect(page.locator("form#settings").count() == 1, "no form#settings")

    def filters(self):
        run, page = self.run, self.page
        run.goto(page, "/ui/scans")
        form = "form#filters"
        expect(page.locator(form).count() == 1, "no form#filters")
        method = page.eval_on_selector(form, "f => f.method")
        expect(method == "get", f"form#filters' method is {method}")
        for name in (
            "status",
            "blocked",
            "project",
            "provider",
            "min_score",
            "max_score",
            "from",
            "to",
            "q",
        ):
            expect(
                page.locator(f"{form} [name={name}]").count() >= 1,
                f"form#filters has no field {name}",
            )
        set_field(page, form, "status", "completed")
        set_field(page, form, "project", PROJECT)
        set_field(page, form, "min_score", "0")
        run.submit(page, form)
        q = query_of(page)
        expect(
            q.get("status") == ["completed"] and q.get("project") == [PROJECT],
            f"the filters are not in the URL: {page.url}",
        )
        want = sorted(s["id"] for s in api_scans({"status": "completed", "project": PROJECT}))
        got = sorted(all_rows(run, page))
        expect(want and got == want, f"filtered table#scans {got} differs from the API's {want}")
        filtered_url = page.url
        first_page = rows(page, "scans")

        def still_filtered(how):
            expect(
                page.url == filtered_url,
                f"after {how} the URL is {page.url}, expected {filtered_url}",
            )
            for name, value in (("status", "completed"), ("project", PROJECT), ("min_score", "0")):
                got = field_value(page, form, name)
                expect(
                    got == value, f"after {how} form#filters' {name} is {got!r}, expected {value!r}"
                )
            expect(
                rows(page, "scans") == first_page,
                f"after {how} the rows are {rows(page, 'scans')}, expected {first_page}",
            )

        page.reload()
        still_filtered("a reload")
        run.goto(page, "/ui/")
        page.go_back()
        page.wait_for_load_state()
        still_filtered("the back button")
        # A filter nothing matches: an empty table, still with the filter in the URL.
        set_field(page, form, "q", "no-such-host-anywhere")
        run.submit(page, form)
        expect(
            query_of(page).get("q") == ["no-such-host-anywhere"], f"q is not in the URL: {page.url}"
        )
        expect(
            rows(page, "scans") == [], f"q=no-such-host-anywhere still lists {rows(page, 'scans')}"
        )
        # The host name filter finds the hostile host.
        set_field(page, form, "q", HOSTILE_HOST)
        run.submit(page, form)
        expect(
            query_of(page).get("q") == [HOSTILE_HOST],
            f"the host name in q does not survive the URL: {page.url}",
        )
        expect(
            rows(page, "scans") == first_page,
            f"q=<the host name> lists {rows(page, 'scans')}, expected {first_page}",
        )
        expect(
            field_value(page, form, "q") == HOSTILE_HOST,
            "form#filters does not show the host name it searched for",
        )
        no_hostile_script(page)

    def csv_matches_api(self):
        run, page = self.run, self.page
        run.goto(page, "/ui/scans?" + urlencode({"status": "completed", "project": PROJECT}))
        link = page.locator("a#csv")
        expect(link.count() == 1, "no a#csv")
        href = link.get_attribute("href")
        csv_url = urlsplit(href)
        expect(csv_url.path.endswith("/ui/scans.csv"), f"a#csv points at {href}")
        cq = parse_qs(csv_url.query)
        expect(
            cq.get("status") == ["completed"] and cq.get("project") == [PROJECT],
            f"a#csv does not carry the filters: {href}",
        )
        for label, url, query in (
            (
                "filtered",
                BASE + "/ui/scans.csv?" + csv_url.query,
                {"status": "completed", "project": PROJECT},
            ),
            ("unfiltered", BASE + "/ui/scans.csv", {}),
        ):
            r = self.ctx.request.get(url, max_redirects=0)
            expect(r.status == 200, f"GET {url}: {r.status}")
            expect(
                "text/csv" in r.headers.get("content-type", ""),
                f"{url}: content type {r.headers.get('content-type')}",
            )
            text = r.text()
            saved = run.save_text(f"scans-{label}.csv", text)
            table = list(csv.reader(io.StringIO(text, newline="")))
            expect(table and table[0] == CSV_HEADER, f"{label} CSV header {table[:1]} ({saved})")
            got = {row[0]: dict(zip(CSV_HEADER, row)) for row in table[1:]}
            api_rows = {s["id"]: s for s in api_scans(query)}
            expect(
                sorted(got) == sorted(api_rows),
                f"{label} CSV scan IDs {sorted(got)} differ from the API's {sorted(api_rows)} ({saved})",
            )
            for sid, s in api_rows.items():
                row = got[sid]
                for col, want in (
                    ("status", s["status"]),
                    ("agent_id", s["agent_id"]),
                    ("score", fmt_score(s["score"])),
                    ("released_by", s["released_by"] or ""),
                    ("project", s["project"] or ""),
                    ("critical_failed", str(s["failed_by_severity"]["critical"])),
                    ("high_failed", str(s["failed_by_severity"]["high"])),
                ):
                    expect(
                        row[col] == want,
                        f"{label} CSV {sid} {col} is {row[col]!r}, the API says {want!r} ({saved})",
                    )
                for col in ("created_at", "finished_at"):
                    v = row[col]
                    expect(
                        v == ""
                        and col == "finished_at"
                        and s["finished_at_ms"] is None
                        or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", v),
                        f"{label} CSV {sid} {col} is {v!r}, expected RFC 3339 UTC ({saved})",
                    )
                # The host name starts with `=`: a spreadsheet must not see a formula.
                expect(
                    row["host"] == "'" + HOSTILE_HOST,
                    f"{label} CSV host is {row['host']!r}, expected a leading ' ({saved})",
                )
            risky = [c for row in table[1:] for c in row if c and c[0] in "=+-@\t\r"]
            expect(not risky, f"{label} CSV has cells a spreadsheet would run: {risky} ({saved})")

    def forged_forms(self, forge):
        """Forms on another origin of the same site (another port of 127.0.0.1: the
        cookie is sent, the server must refuse by Origin / Sec-Fetch-Site and csrf) and
        on another site (localhost: SameSite=Strict keeps the cookie home) auto-submit
        to the console: each is a 403, nothing changes, the session survives. Every
        case runs; the failures are listed together."""
        run, page = self.run, self.page
        before = api_ok("GET", "/api/v1/settings")
        failures = []
        for origin in (forge.same_site, forge.cross_site):
            for target in ("/ui/settings", "/ui/logout"):
                url = BASE + target
                run.expected_error_urls.add(url)
                attacker = page.context.new_page()
                run.last_page = attacker
                with attacker.expect_response(
                    lambda r, url=url: r.url == url and r.request.method == "POST"
                ) as info:
                    attacker.goto(f"{origin}/forge{target.replace('/', '-')}.html")
                resp = info.value
                attacker.wait_for_load_state()
                if resp.status != 403:
                    failures.append(
                        f"a form on {origin} posting to {target}: status {resp.status}"
                        f" (then {attacker.url}), expected 403"
                    )
                    run.save_page(f"forged form {origin} {target}")
                else:
                    try:
                        forbidden(attacker)
                        # Same site: the cookie went along, and the server's own check
                        # refused. Another site: SameSite=Strict kept it home.
                        who = attacker.locator("#whoami").count()
                        if origin == forge.same_site:
                            expect(who == 1, "the 403 page does not know the user: no cookie?")
                        else:
                            expect(who == 0, "the cookie went along from another site")
                    except CheckFailed as e:
                        failures.append(f"a form on {origin} posting to {target}: {e}")
                attacker.close()
                after = api_ok("GET", "/api/v1/settings")
                if after != before:
                    failures.append(f"a form on {origin} changed the settings: {before} -> {after}")
                    before = after
                run.goto(page, "/ui/settings")
                signed_in_chrome(page, "admin")
        expect(not failures, "\n     ".join(failures))

    def forged_requests(self):
        """The same session's POSTs without the browser's rules: a foreign, null or
        missing Origin, Sec-Fetch-Site other than same-origin, no csrf, a wrong one,
        another session's: each a 403 that changes nothing. The same request with the
        right Origin and csrf is accepted (the control)."""
        run, page = self.run, self.page
        before = api_ok("GET", "/api/v1/settings")
        run.goto(page, "/ui/settings")
        fields = form_fields(page, "form#settings")
        csrf = dict(fields).get("csrf")
        expect(csrf, "form#settings has no csrf field")
        changed = [(k, "42" if k == "min_score" else v) for k, v in fields]
        without_csrf = [(k, v) for k, v in changed if k != "csrf"]
        wrong_csrf = [(k, ("A" * len(v) if k == "csrf" else v)) for k, v in changed]
        other = run.context()
        other_page = other.new_page()
        sign_in(run, other_page, "admin")
        other_csrf = csrf_of(other_page)
        expect(other_csrf != csrf, "two sessions share a csrf value")
        other_session = [(k, (other_csrf if k == "csrf" else v)) for k, v in changed]
        evil = {"Origin": "http://evil.example"}
        same = {"Origin": BASE}
        cases = [
            ("/ui/settings", "the right csrf, a foreign Origin", changed, evil),
            ("/ui/settings", "the right csrf, Origin null", changed, {"Origin": "null"}),
            ("/ui/settings", "the right csrf, neither Origin nor Sec-Fetch-Site", changed, {}),
            (
                "/ui/settings",
                "the right csrf, Sec-Fetch-Site: same-site",
                changed,
                {"Sec-Fetch-Site": "same-site"},
            ),
            (
                "/ui/settings",
                "the right csrf, Sec-Fetch-Site: cross-site",
                changed,
                {"Sec-Fetch-Site": "cross-site"},
            ),
            ("/ui/settings", "no csrf, the right Origin", without_csrf, same),
            ("/ui/settings", "a wrong csrf, the right Origin", wrong_csrf, same),
            ("/ui/settings", "another session's csrf, the right Origin", other_session, same),
            ("/ui/logout", "the right csrf, a foreign Origin", [("csrf", csrf)], evil),
            ("/ui/logout", "no csrf, the right Origin", [], same),
            ("/ui/logout", "a wrong csrf, the right Origin", [("csrf", "A" * len(csrf))], same),
            (
                f"/ui/scans/{SCAN_ID}/release",
                "the right csrf, a foreign Origin",
                [("csrf", csrf)],
                evil,
            ),
            (f"/ui/scans/{SCAN_ID}/release", "no csrf, the right Origin", [], same),
        ]
        failures = []
        for target, label, form, headers in cases:
            r = self.ctx.request.post(
                BASE + target,
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
                max_redirects=0,
            )
            if r.status != 403:
                path = run.save_text("forged-request.html", r.text())
                failures.append(
                    f"POST {target} with {label}: status {r.status}, expected 403 ({path})"
                )
            after = api_ok("GET", "/api/v1/settings")
            if after != before:
                failures.append(f"POST {target} with {label} changed the settings")
                before = after
        if api_scan(SCAN_ID)["released_by"] is not None:
            failures.append("a forged release went through")
        # The session survived the forged sign-outs.
        run.goto(page, "/ui/settings")
        signed_in_chrome(page, "admin")
        # The control: the same request, same-origin with the right csrf, is accepted
        # (with the values unchanged, so nothing changes).
        r = self.ctx.request.post(
            BASE + "/ui/settings",
            data=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": BASE},
            max_redirects=0,
        )
        if r.status >= 400:
            failures.append(
                f"the control POST /ui/settings (right csrf and Origin) answered {r.status}"
            )
        if api_ok("GET", "/api/v1/settings") != before:
            failures.append("re-saving the settings form unchanged changed them")
        other_page.close()
        other.close()
        expect(not failures, "\n     ".join(failures))

    def users_and_audit(self, forge):
        """Users and tokens, and the Audit log: forms on another origin or site change
        no account; a user made in form#create-user gets an API token, shown once, that
        the API takes; the audit log shows who made them, says its entries chain, and
        wraps long details (settings JSON) instead of scrolling sideways."""
        run, page = self.run, self.page
        before = api_ok("GET", "/api/v1/users")
        failures = []
        for origin in (forge.same_site, forge.cross_site):
            for target in ("/ui/users", f"/ui/users/{ROLES['viewer'][0]}/revoke"):
                url = BASE + target
                run.expected_error_urls.add(url)
                attacker = page.context.new_page()
                run.last_page = attacker
                with attacker.expect_response(
                    lambda r, url=url: r.url == url and r.request.method == "POST"
                ) as info:
                    attacker.goto(f"{origin}/forge{target.replace('/', '-')}.html")
                status = info.value.status
                attacker.wait_for_load_state()
                attacker.close()
                if status != 403:
                    failures.append(f"a form on {origin} posting to {target}: status {status}")
        expect(api_ok("GET", "/api/v1/users") == before, "a forged form changed the users")
        expect(not failures, "\n     ".join(failures))

        run.goto(page, "/ui/users")
        signed_in_chrome(page, "admin")
        names = page.eval_on_selector_all(
            "table#users tr[data-user]", "rs => rs.map(r => r.dataset.user)"
        )
        for name, _ in ROLES.values():
            expect(name in names, f"table#users lacks {name}: {names}")
        form = "form#create-user"
        set_field(page, form, "name", "browser-made")
        set_field(page, form, "role", "provisioner")
        run.submit(page, form)
        expect(page.locator("#new-secret").count() == 1, "no #new-secret after creating a user")
        secret = page.locator("#new-secret").inner_text().strip()
        expect(secret.startswith("rpt_"), f"#new-secret shows {secret!r}")
        req = urllib.request.Request(
            BASE + "/api/v1/scans", headers={"Authorization": f"Bearer {secret}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            expect(r.status == 200, f"the new provisioner's token gets {r.status}")
        run.goto(page, "/ui/users")
        expect(
            page.locator("#new-secret").count() == 0 and secret not in page.content(),
            "the new token is shown again",
        )

        run.goto(page, "/ui/audit?" + urlencode({"action": "user.create"}))
        texts = page.eval_on_selector_all(
            "table#audit tr[data-seq]", "rs => rs.map(r => r.innerText)"
        )
        expect(
            any("browser-made" in t and ROLES["admin"][0] in t for t in texts),
            f"table#audit lacks the creation of browser-made by the admin: {texts[:3]}",
        )
        state = page.locator("#chain-state").inner_text()
        expect("chain correctly" in state, f"#chain-state says {state!r}")
        run.goto(page, "/ui/audit?" + urlencode({"action": "settings.change"}))
        expect(
            page.locator("table#audit tr[data-seq]").count() >= 1, "no settings.change entry"
        )
        sizes = page.evaluate(
            """() => {
              const wrap = document.querySelector("table#audit").closest(".table-wrap");
              return [wrap.scrollWidth, wrap.clientWidth,
                      document.documentElement.scrollWidth, window.innerWidth];
            }"""
        )
        expect(
            sizes[0] <= sizes[1] and sizes[2] <= sizes[3],
            f"the audit table scrolls sideways (table {sizes[0]} > {sizes[1]} or page"
            f" {sizes[2]} > {sizes[3]}): long details do not wrap",
        )

    def release(self):
        run, page = self.run, self.page
        detail = api_scan(SCAN_ID)
        gate = api_ok("GET", f"/api/v1/handover/{AGENT_ID}")
        expect(
            not gate["allowed"] and gate["state"] == "blocked",
            f"before the release the gate says {gate}",
        )
        run.goto(page, f"/ui/scans/{SCAN_ID}")
        with page.expect_navigation():
            page.locator("a#release").click()
        expect(path_of(page) == f"/ui/scans/{SCAN_ID}/release", f"a#release led to {page.url}")
        confirm = page.locator("#release-confirm")
        expect(confirm.count() == 1, "the release page has no #release-confirm")
        text = confirm.inner_text()
        expect(HOSTILE_HOST in text, f"#release-confirm does not name the VM: {text!r}")
        for reason in detail["block_reasons"]:
            expect(reason in text, f"#release-confirm lacks the reason {reason!r}: {text!r}")
        no_hostile_script(page)
        # Looking at the confirmation changes nothing.
        expect(api_scan(SCAN_ID)["released_by"] is None, "opening the release page released")
        run.submit(page, "form#release")
        scan = api_scan(SCAN_ID)
        expect(scan["released_by"] == ROLES["admin"][0], f"released_by is {scan['released_by']!r}")
        gate = api_ok("GET", f"/api/v1/handover/{AGENT_ID}")
        expect(
            gate["allowed"] and gate["state"] == "released",
            f"after the release the gate says {gate}",
        )
        run.goto(page, f"/ui/scans/{SCAN_ID}")
        expect(page.locator("a#release").count() == 0, "a released scan still offers a#release")

    def settings(self):
        run, page = self.run, self.page
        before = api_ok("GET", "/api/v1/settings")
        run.goto(page, "/ui/settings")
        form = "form#settings"
        action = page.eval_on_selector(form, "f => f.action")
        method = page.eval_on_selector(form, "f => f.method")
        expect(
            action == BASE + "/ui/settings" and method == "post",
            f"form#settings: {method} {action}",
        )
        for key in ("mode", "min_score", "profile"):
            expect(
                page.locator(f"{form} [name={key}]").count() >= 1,
                f"form#settings has no field {key}",
            )
        got = field_value(page, form, "min_score")
        expect(
            got is not None and float(got) == before["min_score"],
            f"form#settings shows min_score {got!r}, the API {before['min_score']}",
        )
        set_field(page, form, "min_score", "0")
        run.submit(page, form)
        expect(page.locator("[role=status]").count() >= 1, "a saved change shows no [role=status]")
        after = api_ok("GET", "/api/v1/settings")
        expect(
            after["min_score"] == 0, f"the API says min_score {after['min_score']} after saving 0"
        )
        changed = {
            k: (before.get(k), after.get(k))
            for k in set(before) | set(after)
            if k != "min_score" and before.get(k) != after.get(k)
        }
        expect(not changed, f"saving min_score also changed {changed}")
        # A bad value: 422, an alert naming the field, nothing saved.
        run.goto(page, "/ui/settings")
        set_field(page, form, "min_score", "150")
        beyond_browser_checks(page, form, "min_score")
        run.submit(page, form, 422)
        alert = page.locator("[role=alert]")
        expect(alert.count() >= 1, "a refused min_score shows no [role=alert]")
        words = " ".join(alert.all_inner_texts())
        # The field by its name or by its label.
        label = page.eval_on_selector(
            f"{form} [name=min_score]", "e => e.labels && e.labels[0] ? e.labels[0].innerText : ''"
        )
        names = ["min_score", "minimum score"] + ([label.strip().lower()] if label.strip() else [])
        expect(
            any(n in words.lower() for n in names),
            f"the alert does not name the field ({names}): {words!r}",
        )
        expect(api_ok("GET", "/api/v1/settings")["min_score"] == 0, "a refused min_score was saved")
        # The next scan is judged by the new minimum: it no longer blocks.
        created = api_ok("POST", "/api/v1/scans", {"agent_id": AGENT_ID})
        expect(len(created) == 1, f"POST /api/v1/scans created {created}")
        new_id = created[0]["id"]
        deadline = time.monotonic() + 240
        scan = created[0]
        while scan["status"] in ("pending", "running") and time.monotonic() < deadline:
            time.sleep(1)
            scan = api_scan(new_id)
        expect(
            scan["status"] == "completed",
            f"the manual scan ended {scan['status']}: {scan.get('failure_reason')}",
        )
        expect(
            not scan["blocked"] and not scan["block_reasons"],
            f"with min_score 0 the next scan still blocks: {scan['block_reasons']}",
        )
        first = api_scan(SCAN_ID)
        expect(first["blocked"], "the first scan was not blocked (nothing flipped)")
        run.goto(page, f"/ui/scans/{new_id}")
        expect(page.locator("a#release").count() == 0, "a passing scan offers a#release")
        blocks = page.locator("#block-reasons")
        expect(
            blocks.count() == 0
            or not blocks.inner_text().strip()
            or "score" not in blocks.inner_text(),
            f"#block-reasons of a passing scan: {blocks.inner_text() if blocks.count() else ''!r}",
        )
        run.goto(page, "/ui/")
        expect(new_id in rows(page, "recent"), "the new scan is not on the Overview")

    def running_rows_refresh(self):
        """A pending scan's row in table#scans turns into the finished scan by itself,
        without a reload: the agent is held stopped (SIGSTOP) while the scan is
        created and the list opened, then let go."""
        run, page = self.run, self.page
        os.kill(AGENT_PID, signal.SIGSTOP)
        try:
            created = api_ok("POST", "/api/v1/scans", {"agent_id": AGENT_ID})
            new_id = created[0]["id"]
            run.goto(page, "/ui/scans")
            row = page.locator(f"table#scans tr[data-scan-id='{new_id}']")
            expect(row.count() == 1, f"the new scan {new_id} is not in table#scans")
            badge = row.locator(".badge").inner_text()
            expect(badge in ("pending", "running"), f"the new scan's badge is {badge!r}")
            expect(
                row.get_attribute("data-refresh") is not None,
                "a pending row does not refresh itself (no data-refresh)",
            )
            expect(row.locator("a[download]").count() == 0, "a pending row offers a report")
            page.evaluate("() => { window.rampartStayed = true; }")
        finally:
            os.kill(AGENT_PID, signal.SIGCONT)
        page.wait_for_function(
            """id => {
                const r = document.querySelector(`table#scans tr[data-scan-id='${id}']`);
                return r && !r.hasAttribute('data-refresh');
            }""",
            arg=new_id,
            timeout=240_000,
        )
        expect(
            page.evaluate("() => window.rampartStayed === true"),
            "the page was reloaded: the row was not refreshed in place",
        )
        row = page.locator(f"table#scans tr[data-scan-id='{new_id}']")
        badge = row.locator(".badge").inner_text()
        want = api_scan(new_id)["status"]
        expect(want == "completed", f"the scan ended {want}")
        expect(badge.startswith(want), f"the refreshed row says {badge!r}, the API {want!r}")
        expect(row.locator("a[download]").count() == 1, "the finished row offers no report")

    def sorting(self):
        """The Score and Date heads sort the whole list (every page) and say so with
        aria-sort; the order is in the URL, survives a reload and the back button, and
        keeps the filters."""
        run, page = self.run, self.page
        scans = api_scans({"project": PROJECT})
        newest = [s["id"] for s in scans]
        completed = [s for s in scans if s["status"] == "completed"]
        expect(len(completed) >= 2, f"too few completed scans to sort: {len(completed)}")
        by_score = [
            s["id"] for s in sorted(completed, key=lambda s: (round(s["score"] * 100), s["id"]))
        ]
        run.goto(page, "/ui/scans?" + urlencode({"project": PROJECT}))
        date_head = page.locator("table#scans th", has_text="Date")
        expect(
            date_head.get_attribute("aria-sort") == "descending",
            "the newest-first list's Date head has no aria-sort=descending",
        )
        expect(all_rows(run, page) == newest, "the default order is not the API's newest first")

        def head(name):
            return page.locator("table#scans th", has_text=name)

        for name, sort, aria, want in (
            ("Score", "score_low", "ascending", by_score),
            ("Score", "score_high", "descending", by_score[::-1]),
            ("Date", "newest", "descending", newest),
            ("Date", "oldest", "ascending", newest[::-1]),
        ):
            with page.expect_navigation():
                head(name).locator("a").click()
            q = query_of(page)
            expect(
                q.get("sort") == [sort] and q.get("project") == [PROJECT],
                f"clicking {name} led to {page.url}, expected sort={sort} with the project",
            )
            expect(
                head(name).get_attribute("aria-sort") == aria,
                f"{sort}: the {name} head's aria-sort is {head(name).get_attribute('aria-sort')}",
            )
            expect(field_value(page, "form#filters", "sort") == sort, f"{sort}: form#filters' order")
            got = all_rows(run, page)
            expect(got == want, f"{sort}: the rows are {got}, expected {want}")
        page.reload()
        expect(all_rows(run, page) == newest[::-1], "oldest first does not survive a reload")
        page.go_back()
        page.wait_for_load_state()
        expect(query_of(page).get("sort") == ["newest"], f"back from oldest: {page.url}")
        # A score order lists completed scans only: a status that has no score is refused.
        run.goto(page, "/ui/scans?sort=score_low&status=running", status=400)
        alert = page.locator("[role=alert]").inner_text()
        expect("completed scans only" in alert, f"the alert says {alert!r}")

    def sign_out_ends_the_session(self):
        run, page = self.run, self.page
        run.goto(page, "/ui/")
        cookie = next(c for c in self.ctx.cookies(BASE) if c["name"] == SESSION_COOKIE)
        status, _, _ = raw_get("/ui/scans", cookie["value"])
        expect(status == 200, f"the live cookie outside the browser gets {status} on /ui/scans")
        sign_out(run, page)
        run.goto(page, "/ui/scans")
        on_login_page(page)
        replay = run.context()
        # The cookie exactly as the browser kept it (Chromium refuses a `url` for a
        # Secure cookie on http, so domain and path).
        replay.add_cookies(
            [
                {
                    k: cookie[k]
                    for k in ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite")
                }
            ]
        )
        rpage = replay.new_page()
        run.goto(rpage, "/ui/scans")
        on_login_page(rpage)
        expect(SCAN_ID not in rpage.content(), "the replayed cookie shows scan data")
        status, headers, body = raw_get("/ui/scans", cookie["value"])
        expect(
            status != 200 or 'id="login"' in body,
            f"the old cookie outside the browser still gets /ui/scans ({status})",
        )
        expect(SCAN_ID not in body, "the old cookie outside the browser still gets scan data")
        replay.close()
        self.ctx.close()


def javascript_off(run):
    ctx = run.context(javascript=False)
    page = ctx.new_page()
    run.goto(page, "/ui/login")
    name, password = ROLES["admin"]
    page.fill("form#login input[name=name]", name)
    page.fill("form#login input[name=password]", password)
    run.submit(page, "form#login")
    for path, sel in (
        ("/ui/", "table#recent tr[data-scan-id]"),
        ("/ui/scans", "table#scans tr[data-scan-id]"),
        (f"/ui/scans/{SCAN_ID}", "table#rules tr[data-rule-id]"),
        ("/ui/settings", "form#settings"),
    ):
        run.goto(page, path)
        expect(page.locator(sel).count() >= 1, f"with JavaScript off, {path} has no {sel}")
    ctx.close()


# The outermost elements that reach past the screen's right edge (not those inside
# a box that scrolls on its own).
WIDE_ELEMENTS = """() => {
    const out = [];
    const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
    const walk = e => {
        for (const c of e.children) {
            const r = c.getBoundingClientRect();
            if (r.right > window.innerWidth + 1) {
                out.push(c.tagName.toLowerCase() + (c.id ? '#' + c.id : '') +
                    (c.className && typeof c.className === 'string' ? '.' + c.className.split(' ').join('.') : '') +
                    ' right=' + Math.round(r.right));
                if (out.length >= 8) return;
            }
            if (!scrolls(c)) walk(c);
        }
    };
    walk(document.body);
    return out;
}"""


def narrow_screen(run):
    """At 390 px wide (a phone) no page scrolls sideways: wide tables scroll inside
    their own box, and the heading and navigation stay in view."""
    ctx = run.context(width=390)
    page = ctx.new_page()
    sign_in(run, page, "admin")
    for path in (
        "/ui/",
        "/ui/scans",
        f"/ui/scans/{SCAN_ID}",
        f"/ui/scans/{SCAN_ID}/rules/{HOSTILE_RULE}",
        f"/ui/vms/{AGENT_ID}",
        "/ui/enroll",
        "/ui/settings",
        "/ui/users",
        "/ui/audit",
    ):
        run.goto(page, path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        wide = page.evaluate(WIDE_ELEMENTS) if width > 390 else []
        expect(
            width <= 390,
            f"{path} is {width} px wide at 390 px: it scrolls sideways; too wide: {wide}",
        )
        for sel in ("h1", "nav[aria-label=Main]"):
            box = page.locator(sel).first.bounding_box()
            expect(
                box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 391,
                f"{path}: {sel} is not within the 390 px screen: {box}",
            )
    ctx.close()


# What a focus ring must be: the stylesheet's :focus-visible outline.
FOCUS_RING = """() => {
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    const st = getComputedStyle(e);
    return {
        tag: e.tagName.toLowerCase(),
        name: e.getAttribute('name') || '',
        href: e.getAttribute('href') || '',
        cls: e.className || '',
        id: e.id || '',
        outline: st.outlineStyle + ' ' + st.outlineWidth,
        visible: st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2,
    };
}"""


def keyboard(run):
    """Scan Results with the keyboard alone: Tab reaches the skip link first, then
    the navigation, every filter, the order, the sortable heads, the CSV link and the
    rows' links, each with a visible focus ring; Enter on a sort head follows it."""
    ctx = run.context()
    page = ctx.new_page()
    sign_in(run, page, "admin")
    run.goto(page, "/ui/scans")
    stops = []
    for _ in range(60):
        page.keyboard.press("Tab")
        f = page.evaluate(FOCUS_RING)
        if f is None:
            continue
        expect(f["visible"], f"Tab stop {f} has no visible focus ring ({f['outline']})")
        stops.append(f)
    expect(stops and "skip" in stops[0]["cls"], f"the first Tab stop is not the skip link: {stops[:1]}")
    names = {f["name"] for f in stops}
    for field in ("status", "blocked", "project", "provider", "min_score", "max_score", "from", "to", "q", "sort"):
        expect(field in names, f"Tab never reaches form#filters' {field}: {sorted(names)}")
    expect(any(f["id"] == "csv" for f in stops), "Tab never reaches a#csv")
    expect(any("sort" in f["cls"] for f in stops), "Tab never reaches a sortable head")
    expect(
        any(f["href"].startswith("/ui/scans/sc-") for f in stops),
        "Tab never reaches a scan's link in table#scans",
    )
    # Enter on the focused Score head sorts by score.
    run.goto(page, "/ui/scans")
    page.locator("table#scans th a.sort", has_text="Score").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(query_of(page).get("sort") == ["score_low"], f"Enter on the Score head led to {page.url}")
    ctx.close()


def axe_pass(run, scheme):
    """axe-core on every kind of page, signed out, as viewer and as admin."""
    ctx = run.context(bypass_csp=True, color_scheme=scheme)
    page = ctx.new_page()
    found = []

    def audit(label):
        run.last_page = page
        page.add_script_tag(path=AXE_JS)
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
            AXE_TAGS,
        )
        expect(result["passes"], f"axe-core checked nothing on {page.url}")
        for v in result["violations"]:
            nodes = "; ".join(
                " ".join(n["target"]) if isinstance(n["target"], list) else str(n["target"])
                for n in v["nodes"][:8]
            )
            found.append(
                f"[{scheme}] {label} ({page.url}): {v['id']} ({v['impact']}): {v['help']} — {nodes}"
            )
            run.save_page(f"axe-{scheme}-{label}-{v['id']}")

    run.goto(page, "/ui/login")
    audit("sign-in")
    page.fill("form#login input[name=name]", "axe-nobody")
    page.fill("form#login input[name=password]", "not-a-password-at-all")
    run.submit_any(page, "form#login")
    audit("sign-in refused")
    sign_in(run, page, "viewer")
    audit("overview as viewer")
    run.goto(page, "/ui/scans", 403)
    audit("403 page")
    sign_out(run, page)
    sign_in(run, page, "admin")
    audit("overview")
    run.goto(page, "/ui/scans")
    audit("scan results")
    run.goto(page, "/ui/scans?" + urlencode({"status": "completed", "project": PROJECT}))
    audit("scan results, filtered")
    run.goto(page, f"/ui/scans/{SCAN_ID}")
    audit("scan detail")
    run.goto(page, f"/ui/scans/{SCAN_ID}/release")
    audit("release confirmation")
    run.goto(page, f"/ui/scans/{SCAN_ID}/rules/{HOSTILE_RULE}")
    audit("a rule's page")
    run.goto(page, f"/ui/vms/{AGENT_ID}")
    audit("VM page")
    run.goto(page, "/ui/enroll")
    audit("enroll form")
    run.goto(page, "/ui/settings")
    audit("settings")
    run.submit(page, "form#settings")
    audit("settings saved")
    set_field(page, "form#settings", "min_score", "150")
    beyond_browser_checks(page, "form#settings", "min_score")
    run.submit(page, "form#settings", 422)
    audit("settings refused")
    run.goto(page, "/ui/users")
    audit("users and tokens")
    viewer = ROLES["viewer"][0]
    run.goto(page, f"/ui/users/{viewer}/password")
    audit("set a password")
    run.goto(page, f"/ui/users/{viewer}/revoke")
    audit("revoke a user")
    run.goto(page, "/ui/audit")
    audit("audit log")
    run.goto(page, "/ui/audit?" + urlencode({"action": "settings.change"}))
    audit("audit log, filtered")
    sign_out(run, page)
    ctx.close()
    expect(not found, f"axe-core found {len(found)} violation(s):\n     " + "\n     ".join(found))


def overview_screenshot(run):
    ctx = run.context(color_scheme="light")
    page = ctx.new_page()
    sign_in(run, page, "admin")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SCREENSHOT)
    print(f"     wrote {SCREENSHOT}")
    ctx.close()


class Forge(http.server.SimpleHTTPRequestHandler):
    """Serves the attacker's pages."""

    def log_message(self, *args):
        pass


def forge_server():
    """A second origin on loopback with auto-submitting forms aimed at the console."""
    root = os.path.join(OUT_DIR, "forge")
    os.makedirs(root, exist_ok=True)
    pages = {
        "forge-ui-settings.html": '<input name="mode" value="audit"><input name="min_score" value="42"><input name="csrf" value="forged">',
        "forge-ui-logout.html": '<input name="csrf" value="forged">',
        "forge-ui-users.html": '<input name="name" value="mallory"><input name="role" value="admin"><input name="csrf" value="forged">',
        f"forge-ui-users-{ROLES['viewer'][0]}-revoke.html": '<input name="confirm" value="yes"><input name="csrf" value="forged">',
    }
    for name, inputs in pages.items():
        target = "/" + name[len("forge-") : -len(".html")].replace("-", "/")
        with open(os.path.join(root, name), "w") as f:
            f.write(
                "<!DOCTYPE html><html lang=en><title>win a prize</title>"
                f'<form method="post" action="{BASE}{target}">{inputs}</form>'
                "<script>document.forms[0].submit()</script></html>"
            )
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Forge, directory=root)
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]

    class Origins:
        same_site = f"http://127.0.0.1:{port}"
        cross_site = f"http://localhost:{port}"

    return srv, Origins


def main():
    started = time.monotonic()
    os.makedirs(OUT_DIR, exist_ok=True)
    print(f"console {BASE}; Chromium {CHROMIUM}; axe {AXE_JS}; output {OUT_DIR}", flush=True)
    srv, forge = forge_server()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print(f"browser {browser.version}", flush=True)
        run = Run(browser)
        run.forge_origins.update({forge.same_site, forge.cross_site})
        run.check(
            "/ redirects to /ui/; signed out, /ui/scans asks to sign in; a wrong password is an alert; no icon 404",
            unsigned,
            run,
        )
        for scheme in ("light", "dark"):
            run.check(
                f"axe-core finds no WCAG 2.1 A/AA violation ({scheme})", axe_pass, run, scheme
            )
        for role in ("viewer", "user"):
            run.check(
                f"{role}: a page without scan data; 403 on scans, detail, release, settings, downloads",
                no_scan_data,
                run,
                role,
            )
        run.check(
            "provisioner: overview, scans, detail and downloads; 403 on settings and release",
            provisioner_sees_scans,
            run,
        )
        admin = Admin(run)
        if run.check(
            "admin: signing in from /ui/scans returns there; the session cookie's attributes",
            admin.sign_in_through_next,
        ):
            run.check(
                "admin: overview, scan results, detail (hostile text shown as text), downloads, settings",
                admin.views,
            )
            run.check(
                "admin: filters in the URL survive a reload and the back button", admin.filters
            )
            run.check(
                "admin: the CSV of the filtered list has the API's scans", admin.csv_matches_api
            )
            run.check(
                "forms on another origin and another site are refused (403), change nothing",
                admin.forged_forms,
                forge,
            )
            run.check(
                "same-session POSTs with a wrong Origin or csrf are refused (403), change nothing",
                admin.forged_requests,
            )
            run.check(
                "admin: users and tokens, the audit log; forged account forms change nothing",
                admin.users_and_audit,
                forge,
            )
            run.check(
                "admin: release through the confirmation page; the handover gate lets the VM proceed",
                admin.release,
            )
            run.check(
                "admin: a setting saved in form#settings reaches the API and the next scan; 150 is a 422",
                admin.settings,
            )
            run.check(
                "admin: a pending scan's row turns into the finished scan without a reload",
                admin.running_rows_refresh,
            )
            run.check(
                "admin: the Score and Date heads sort every page; the order is in the URL",
                admin.sorting,
            )
            run.check("read views work with JavaScript off", javascript_off, run)
            run.check("at 390 px wide no page scrolls sideways", narrow_screen, run)
            run.check(
                "Scan Results by keyboard: every stop reached with a visible focus ring",
                keyboard,
                run,
            )
            if SCREENSHOT:
                run.check("the Overview screenshot", overview_screenshot, run)
            run.check(
                "sign-out ends the session: the old cookie gets the sign-in page",
                admin.sign_out_ends_the_session,
            )
        # Each check above failed on what the browser first reported during it; this
        # one lists everything it reported, with how often.
        run.check(
            "no console error, CSP violation, page error, dialog or foreign request",
            run.no_problems,
        )
        browser.close()
    srv.shutdown()
    print(
        f"{len(run.passed)} passed, {len(run.failed)} failed in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    if run.failed:
        print("failed:")
        for name, detail, saved in run.failed:
            lines = [l for l in detail.strip().splitlines() if l.strip()]
            first = (
                lines[-1]
                if detail.startswith("Traceback")
                else " / ".join(l.strip() for l in lines[:3])
            )
            print(f"  - {name}: {first}")
            for s in saved:
                print(f"      {s}")
        sys.exit(1)


if __name__ == "__main__":
    main()
