#!/usr/bin/env python3
"""Saves a PNG of the console's Overview, signed in, in Debian's Chromium (headless).

Usage (with the demo running; see scripts/demo.sh):
  /var/cache/rampart-tests/venv-playwright-1.65.3/bin/python scripts/console-screenshot.py \
      http://127.0.0.1:8080 demo-admin "$(cat rampart-demo/console-password)" docs/console-overview.png

The venv and Chromium are what scripts/test.sh installs for the browser test. Nothing
is downloaded: Playwright drives /usr/lib/chromium/chromium.
"""
import sys

from playwright.sync_api import sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    base, name, password, out = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/lib/chromium/chromium", args=ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
        page = ctx.new_page()
        page.goto(base + "/ui/login")
        page.fill("form#login input[name=name]", name)
        page.fill("form#login input[name=password]", password)
        page.click("form#login button[type=submit]")
        page.wait_for_url(base + "/ui/")
        if page.locator("a.card[data-card]").count() != 4:
            sys.exit("the Overview did not show its four cards: is this user an admin?")
        page.screenshot(path=out)
        browser.close()
    print(out)


if __name__ == "__main__":
    main()
