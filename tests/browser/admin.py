"""The admin's checks, in order, in one signed-in session: views, filters, the CSV,
forged forms and requests, users and the audit log, the release, settings, a row that
refreshes itself, sorting, and sign-out."""

import csv
import io
import os
import re
import signal
import time
from urllib.parse import parse_qs, urlencode, urlsplit

from harness import (
    AGENT_ID,
    AGENT_PID,
    BASE,
    CSV_HEADER,
    HOSTILE_HOST,
    PROJECT,
    ROLES,
    SCAN_ID,
    SESSION_COOKIE,
    all_rows,
    api_ok,
    api_scan,
    api_scans,
    beyond_browser_checks,
    expect,
    field_value,
    fmt_score,
    no_hostile_script,
    on_login_page,
    path_of,
    query_of,
    raw_get,
    rows,
    set_field,
    sign_out,
    signed_in_chrome,
)
from admin_forged import Forgeries
from roles import downloads, overview_with_data, scan_detail


class Admin(Forgeries):
    """One admin session shared by the admin's checks (in order); the forgery checks
    are in `admin_forged`."""

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
