#!/usr/bin/env python3
"""The sign-up page of examples/ in a real browser against the local stack.

Starts the ActiveCampaign sandbox (which also stands in for Turnstile's siteverify) and
`cargo lambda watch` with the shipped mapping.toml, its newsletter route pointed at the pages
served here (its allowed origin and its thank-you page), serves examples/ on two origins, and
drives headless Chromium through selenium:

1. a person fills the form on the allowed origin: the browser posts it (setting Origin itself),
   follows the 303 to the thank-you page, and the contact is in the sandbox, subscribed with
   consent and tagged;
2. the same page served from another origin is refused (403), and no contact lands;
3. a bot-style post that fills the honeypot gets the same thank-you page, and no contact lands.

The page carries a test token where the Turnstile widget would have put one (the widget's
script cannot load here). Exits non-zero when any step fails. Run by scripts/test.sh.
"""

import functools
import http.server
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo import ROOT, contacts_by_email, free_port, start, stop, wait_http  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "XXXX.DUMMY.TOKEN.XXXX"
# What the machine's closed network needs (no background connections, no updates).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


class Pages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_pages(port):
    handler = functools.partial(Pages, directory=os.path.join(ROOT, "examples"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def mapping_for(page_origin):
    """The shipped mapping, its newsletter route pointed at the pages served here."""
    with open(os.path.join(ROOT, "mapping.toml")) as f:
        text = f.read()
    for shipped, local in [('allowed_origins = ["https://example.com"]', f'allowed_origins = ["{page_origin}"]'),
                           ('redirect = "https://example.com/thanks"', f'redirect = "{page_origin}/thanks.html"')]:
        if shipped not in text:
            sys.exit(f"mapping.toml no longer has {shipped!r}: update scripts/browser_check.py")
        text = text.replace(shipped, local)
    return text


def browser(user_data_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    # The captcha script's host is unreachable: do not wait for it to fail.
    options.page_load_strategy = "eager"
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def fill_and_submit(driver, page_url, email, honeypot=None):
    from selenium.webdriver.common.by import By

    driver.get(page_url)
    driver.find_element(By.ID, "your_email").send_keys(email)
    driver.find_element(By.ID, "your_name").send_keys("Grace Hopper")
    driver.find_element(By.ID, "agree").click()
    if honeypot is not None:
        # A person cannot see the field; a bot fills every input it finds.
        driver.execute_script("document.getElementById('website').value = arguments[0];", honeypot)
    driver.find_element(By.ID, "submit").click()


def wait_for(predicate, seconds=15):
    end = time.time() + seconds
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def main():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run scripts/browser_tools.sh (Debian's chromium and chromium-driver)")
    tmp = tempfile.mkdtemp(prefix="acws-browser-")
    sandbox_port, watch_port, page_port, other_port = free_port(), free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    page_origin, other_origin = f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{other_port}"

    with open(os.path.join(ROOT, "local", "secret.json")) as f:
        secret = json.load(f)
    secret["api_url"] = sandbox_url
    secret_path = os.path.join(tmp, "secret.json")
    with open(secret_path, "w") as f:
        json.dump(secret, f)
    mapping_path = os.path.join(tmp, "mapping.toml")
    with open(mapping_path, "w") as f:
        f.write(mapping_for(page_origin))
    action = (f"http://127.0.0.1:{watch_port}/lambda-url/webhook/webhooks/newsletter"
              f"?token={secret['webhook_secrets']['newsletter']}")
    query = urllib.parse.urlencode({"test-token": TOKEN, "action": action})

    sandbox = watch = driver = None
    servers = []
    failures = []
    try:
        sandbox = start([os.path.join(ROOT, "target", "debug", "ac-sandbox"), str(sandbox_port)],
                        os.path.join(tmp, "sandbox.log"), dict(os.environ, AC_SANDBOX_RATE_LIMIT="5"))
        wait_http(f"{sandbox_url}/sandbox/state", 30, sandbox, "ac-sandbox")
        function_env = {"SECRET_FILE": secret_path, "MAPPING_FILE": mapping_path, "AWS_REGION": "us-east-1",
                        "RUST_LOG": "info", "CAPTCHA_SITEVERIFY_URL": f"{sandbox_url}/turnstile/v0/siteverify"}
        cmd = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(watch_port),
               "--ignore-changes"]
        for key, value in function_env.items():
            cmd += ["--env-var", f"{key}={value}"]
        watch = start(cmd, os.path.join(tmp, "watch.log"), dict(os.environ, **function_env))
        wait_http(f"http://127.0.0.1:{watch_port}/lambda-url/webhook/health", 300, watch, "cargo lambda watch")
        servers = [serve_pages(page_port), serve_pages(other_port)]
        driver = browser(os.path.join(tmp, "chromium"))

        def contact(email):
            return contacts_by_email(sandbox_url).get(email)

        # 1. A person, on the site's own page.
        person = "grace.person@example.com"
        fill_and_submit(driver, f"{page_origin}/signup.html?{query}", person)
        landed = wait_for(lambda: driver.current_url.startswith(f"{page_origin}/thanks.html")
                          and "Thank you" in driver.page_source)
        stored = wait_for(lambda: contact(person))
        if not landed:
            failures.append(f"the person's post did not end on the thank-you page: {driver.current_url}")
        if not stored:
            failures.append(f"{person} is not in the sandbox")
        else:
            subscribed = any(l["id"] == 1 and l["status"] == "active" for l in stored.get("lists", []))
            if not subscribed or not {"newsletter", "source:footer"} <= set(stored.get("tags", [])):
                failures.append(f"{person} landed without the newsletter list or tags: {stored}")
        print(f"a person on {page_origin}: {'thank-you page' if landed else driver.current_url}, "
              f"contact {'in the sandbox' if stored else 'missing'}")

        # 2. The same page from another origin.
        elsewhere = "grace.elsewhere@example.com"
        fill_and_submit(driver, f"{other_origin}/signup.html?{query}", elsewhere)
        refused = wait_for(lambda: "does not accept posts" in driver.page_source)
        time.sleep(0.5)
        if not refused:
            failures.append(f"a post from {other_origin} was not refused: {driver.current_url} {driver.page_source[:300]}")
        if contact(elsewhere):
            failures.append(f"{elsewhere} landed although its page is on another origin")
        print(f"the same page on {other_origin}: {'refused (403)' if refused else 'NOT refused'}, "
              f"contact {'missing, as it should be' if not contact(elsewhere) else 'LANDED'}")

        # 3. A bot that fills the honeypot.
        bot = "grace.bot@example.com"
        fill_and_submit(driver, f"{page_origin}/signup.html?{query}", bot, honeypot="http://spam.example")
        thanked = wait_for(lambda: driver.current_url.startswith(f"{page_origin}/thanks.html")
                           and "Thank you" in driver.page_source)
        time.sleep(0.5)
        if not thanked:
            failures.append(f"the bot was not shown the thank-you page: {driver.current_url}")
        if contact(bot):
            failures.append(f"{bot} landed although it filled the honeypot")
        print(f"a bot filling the honeypot: {'thank-you page' if thanked else driver.current_url}, "
              f"contact {'missing, as it should be' if not contact(bot) else 'LANDED'}")
    finally:
        if driver is not None:
            driver.quit()
        for server in servers:
            server.shutdown()
        stop(watch)
        stop(sandbox)
    if failures:
        print("\nbrowser check FAILED:\n  " + "\n  ".join(failures))
        print(f"logs: {tmp}/watch.log, {tmp}/sandbox.log")
        sys.exit(1)
    print("browser check passed: the page's post lands, another origin is refused, the honeypot syncs nothing")


if __name__ == "__main__":
    main()
