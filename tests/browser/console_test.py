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

The harness and the environment it reads are in harness.py; the checks are in roles.py
(signed out, viewer, user, provisioner), admin.py (the admin's session) and a11y.py
(JavaScript off, a narrow screen, the keyboard, axe-core). This script runs them in order.
"""

import os
import sys
import time

# The modules next to this script; importing them leaves no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from playwright.sync_api import sync_playwright  # noqa: E402

from a11y import (  # noqa: E402
    axe_pass,
    javascript_off,
    keyboard,
    narrow_screen,
    overview_screenshot,
)
from admin import Admin  # noqa: E402
from harness import (  # noqa: E402
    AXE_JS,
    BASE,
    CHROMIUM,
    CHROMIUM_ARGS,
    OUT_DIR,
    SCREENSHOT,
    Run,
    forge_server,
)
from roles import no_scan_data, provisioner_sees_scans, unsigned  # noqa: E402


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
