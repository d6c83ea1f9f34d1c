"""The browser test's harness; console_test.py runs the checks, and its docstring lists
the environment read here.

The environment (the collector, the users, the scan, the hostile strings), `expect` and
`Run` (browser contexts that report what the browser complains of, named checks,
evidence of failures, navigation and forms), the REST API as admin, page helpers, and
the loopback server of an attacker's auto-submitting forms.
"""

import functools
import http.client
import http.server
import json
import os
import re
import threading
import time
import traceback
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

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


# ---- the attacker's origin


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
