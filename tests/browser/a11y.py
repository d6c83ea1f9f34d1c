"""Use without a mouse or JavaScript, and accessibility: read views with JavaScript off,
a 390 px wide screen, Scan Results by keyboard, axe-core on every kind of page, and the
optional Overview screenshot."""

from urllib.parse import urlencode

from harness import (
    AGENT_ID,
    AXE_JS,
    AXE_TAGS,
    HOSTILE_RULE,
    PROJECT,
    ROLES,
    SCAN_ID,
    SCREENSHOT,
    beyond_browser_checks,
    expect,
    query_of,
    set_field,
    sign_in,
    sign_out,
)


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
