"""The admin's checks against forgery, mixed into `admin.Admin`: forms from another
origin or site, forged requests, and users, tokens and the audit log (with forged
account forms)."""

import re
import urllib.request
from urllib.parse import urlencode

from harness import (
    BASE,
    ROLES,
    SCAN_ID,
    CheckFailed,
    api_ok,
    api_scan,
    csrf_of,
    expect,
    forbidden,
    form_fields,
    set_field,
    sign_in,
    signed_in_chrome,
)


class Forgeries:
    """The admin's forgery checks; `self` is the `admin.Admin` session (run, ctx, page)."""

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
