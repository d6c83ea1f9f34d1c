"""What each role sees: signed out, a viewer and a user (no scan data; 403 on scans,
downloads and forms), and a provisioner; the Overview, scan detail and download checks
the provisioner and the admin (admin.py) share."""

import re

from harness import (
    AGENT_ID,
    BASE,
    EVIDENCE_MARKUP,
    HOSTILE_EVIDENCE,
    HOSTILE_HOST,
    HOSTILE_RULE,
    ROLES,
    SCAN_ID,
    SESSION_COOKIE,
    api_ok,
    api_scan,
    csrf_of,
    expect,
    forbidden,
    no_hostile_script,
    on_login_page,
    path_of,
    rows,
    sign_in,
    sign_out,
    signed_in_chrome,
    visible_text,
)


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
