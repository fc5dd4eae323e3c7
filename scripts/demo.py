#!/usr/bin/env python3
"""Runs the webhook function locally, end to end, with no AWS and no ActiveCampaign account.

Starts the ActiveCampaign sandbox (ac-sandbox, with its 5 requests/s limit on and the bundled
seed local/sandbox-seed.toml) and `cargo lambda watch`, replays every events/ file with
`cargo lambda invoke webhook --data-file ...` (import-callback-*.json to the import-callback
function; and one event again under each of three faults
switched on in the sandbox), and prints a table: event, HTTP status, outcome, and the contact as
the sandbox now holds it. Then it stops everything it started.

    scripts/demo.sh            # the demo
    scripts/demo.sh --keep     # leave everything running for curl or a tunnelled sender
    scripts/demo.sh --check    # exit non-zero unless the run behaves as documented (CI)
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from coldstart import nth_delivery

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(preferred=0):
    """`preferred` if it is free, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline_s, proc=None, what=""):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited early (code {proc.returncode}); see its log above")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{what} did not answer {url} within {deadline_s}s")


def start(cmd, log_path, env=None):
    log = open(log_path, "w")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except Exception:
            os.killpg(proc.pid, signal.SIGKILL)


def invoke(port, event_path, function="webhook"):
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
         "--data-file", event_path, "--output-format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["invoke failed"])[-1], {}
    response = json.loads(out.stdout)
    status = response.get("statusCode")
    try:
        body = json.loads(response.get("body") or "{}")
    except json.JSONDecodeError:
        body = {}
    outcome = body.get("status") or body.get("error") or ""
    if status == 303:
        outcome = "redirect to " + (response.get("headers", {}).get("location", "?"))
    return status, outcome, body


# Faults switched on in the sandbox, one replay each: an error status, an empty body (the
# contact saved all the same), an HTML error page.
FAULT_DRILL = [
    {"kind": "status", "status": 503, "count": 2},
    {"kind": "empty", "count": 1},
    {"kind": "html", "status": 502, "count": 1},
]


def post_json(url, value):
    request = urllib.request.Request(url, data=json.dumps(value).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def contacts_by_email(sandbox_url):
    return {c["email"]: c for c in get_json(f"{sandbox_url}/sandbox/contacts")["contacts"]}


def describe(contact):
    """A contact on one line: email, name, lists with status, tags, fields."""
    parts = [contact["email"]]
    name = " ".join(x for x in (contact.get("first_name"), contact.get("last_name")) if x)
    if name:
        parts.append(f'"{name}"')
    if contact.get("organization"):
        parts.append(f"org={contact['organization']}")
    if contact.get("lists"):
        parts.append("lists=" + ",".join(f"{l['name'] or l['id']}:{l['status']}" for l in contact["lists"]))
    if contact.get("tags"):
        parts.append("tags=" + ",".join(contact["tags"]))
    if contact.get("fields"):
        parts.append("fields=" + ",".join(f"{(f['perstag'] or str(f['id'])).strip('%')}={f['value']}"
                                          for f in contact["fields"]))
    return " ".join(parts)


def touched(before, after, body):
    """The contacts this event wrote: the one named by subscriber_id, and any that changed."""
    emails = [e for e, c in after.items() if before.get(e) != c]
    sid = body.get("subscriber_id")
    if sid is not None:
        emails += [e for e, c in after.items() if c["id"] == sid and e not in emails]
    return emails


def wait_imports(sandbox_url, deadline_s):
    """The sandbox's imports once none is still running (the importer works in the background)."""
    end = time.time() + deadline_s
    while True:
        imports = get_json(f"{sandbox_url}/sandbox/imports")["imports"]
        if all(i["status"] == "completed" for i in imports) or time.time() > end:
            return imports
        time.sleep(0.2)


def check(rows, contacts, imports, state):
    """What CI holds the demo to; returns the failures."""
    failures = []
    statuses = {r[1] for r in rows}
    errors = [r[:3] for r in rows if r[1] is None or r[1] >= 500]
    if errors:
        failures.append(f"errors: {errors}")
    missing = {200, 303, 400, 401, 404, 405, 415} - statuses
    if missing:
        failures.append(f"statuses never seen: {sorted(missing)}")
    drill = [r for r in rows if "(sandbox:" in r[0]]
    if len(drill) != len(FAULT_DRILL) or any(r[2] != "synced" for r in drill):
        failures.append(f"the function did not ride out the sandbox's faults: {[r[:3] for r in drill]}")
    synced = [r for r in rows if r[2] == "synced"]
    if len(synced) < 15:
        failures.append(f"only {len(synced)} synced")
    ids = {c["id"] for c in contacts.values()}
    lost = [r[0] for r in synced if "subscriber_id" in r[3] and r[3]["subscriber_id"] not in ids]
    if lost:
        failures.append(f"synced but not in the sandbox: {lost}")

    def lists(email):
        return {l["name"]: l["status"] for l in contacts.get(email, {}).get("lists", [])}

    def fields(email):
        return {f["perstag"]: f["value"] for f in contacts.get(email, {}).get("fields", [])}

    # The seed has mary@ unsubscribed from Newsletter and jon@ from Customers.
    if lists("mary@example.com").get("Newsletter") != "active":
        failures.append(f"the newsletter opt-in did not re-subscribe mary@: {lists('mary@example.com')}")
    if lists("jon@example.com").get("Customers") != "unsubscribed":
        failures.append(f"an order re-subscribed jon@ to Customers: {lists('jon@example.com')}")
    if lists("jon@example.com").get("Newsletter") != "active":
        failures.append(f"jon@ consented to the newsletter: {lists('jon@example.com')}")
    if fields("mary@example.com").get("%SIGNUP_PAGE%") != "/blog/post" or "%INTERESTS%" not in fields("mary@example.com"):
        failures.append(f"the newsletter's fields did not land: {fields('mary@example.com')}")
    if fields("jon@example.com").get("%LAST_ORDER%") != "#9999":
        failures.append(f"the shop's fields did not land: {fields('jon@example.com')}")
    if "early-adopter" not in contacts.get("mary@example.com", {}).get("tags", []):
        failures.append("tags were replaced, not added")
    # The BigCommerce webhook carries only an order id: its contact comes from the lookup.
    if "katherine.coleman@example.com" not in contacts:
        failures.append("the BigCommerce order was not looked up: its buyer is not in the sandbox")
    imported = [e for e in contacts if e.startswith("nd")]
    if not imports or any(i["status"] != "completed" for i in imports) or len(imported) < 12:
        failures.append(f"the bulk import did not complete: {imports}, {len(imported)} contacts")
    callbacks = {r[0]: (r[1], r[2]) for r in rows if r[0].startswith("import-callback")}
    expected = {"import-callback-post": (200, "recorded"), "import-callback-get": (200, "recorded")}
    if any(callbacks.get(k) != v for k, v in expected.items()) or callbacks.get("import-callback-forged", (0,))[0] != 401:
        failures.append(f"the import-callback function did not settle the seed's import: {callbacks}")
    if state["fault"] is not None:
        failures.append(f"a drill fault was never reached: {state['fault']}")
    if state["rate_limit_per_second"] != 5:
        failures.append(f"the sandbox's rate limit was not on: {state['rate_limit_per_second']}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox and cargo lambda watch running")
    parser.add_argument("--check", action="store_true", help="fail unless every answer and contact is as documented")
    args = parser.parse_args()

    # A SIGTERM stops what was started, as Ctrl-C does (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    begun = time.time()
    tmp = tempfile.mkdtemp(prefix="acws-demo-")
    # Left running, the usual ports (as in the README) are easier to point a sender at.
    sandbox_port, watch_port = (free_port(4599), free_port(9000)) if args.keep else (free_port(), free_port())
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    with open(os.path.join(ROOT, "local", "secret.json")) as f:
        secret = json.load(f)
    secret["api_url"] = sandbox_url
    secret_path = os.path.join(tmp, "secret.json")
    with open(secret_path, "w") as f:
        json.dump(secret, f)
    # Fresh Stripe signatures: its replay window is 5 minutes.
    events_dir = os.path.join(tmp, "events")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_events.py"), "--out", events_dir, "--now"],
                   check=True, capture_output=True)

    sandbox = watch = None
    try:
        # The sandbox keeps ActiveCampaign's 5 requests/s: the function paces itself to it.
        sandbox_env = dict(os.environ, AC_SANDBOX_RATE_LIMIT="5")
        sandbox_env.pop("AC_SANDBOX_FAULT", None)
        sandbox = start([os.path.join(ROOT, "target", "debug", "ac-sandbox"), str(sandbox_port)],
                        os.path.join(tmp, "sandbox.log"), sandbox_env)
        wait_http(f"{sandbox_url}/sandbox/state", 30, sandbox, "ac-sandbox")
        # The newsletter's captcha is verified by the sandbox's Turnstile stand-in.
        siteverify = f"{sandbox_url}/turnstile/v0/siteverify"
        # Ids-only senders (BigCommerce) are looked up in the sandbox's stand-in of their API.
        env = dict(os.environ, SECRET_FILE=secret_path, AWS_REGION="us-east-1", RUST_LOG="info",
                   CAPTCHA_SITEVERIFY_URL=siteverify, SENDER_API_URL=sandbox_url)
        watch = start(["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(watch_port),
                       "--ignore-changes", "--env-var", f"SECRET_FILE={secret_path}",
                       "--env-var", f"CAPTCHA_SITEVERIFY_URL={siteverify}",
                       "--env-var", f"SENDER_API_URL={sandbox_url}"],
                      os.path.join(tmp, "watch.log"), env)
        base = f"http://127.0.0.1:{watch_port}/lambda-url/webhook"
        wait_http(f"{base}/health", 300, watch, "cargo lambda watch")

        # The operator's connection check, against the sandbox's account (its v3 reads).
        checked = subprocess.run(["cargo", "run", "-q", "-p", "ac-webhook-sync-cli", "--", "check",
                                  "--secret-file", secret_path, "--url", base],
                                 cwd=ROOT, capture_output=True, text=True)
        print(checked.stdout.split("\n\nroutes")[0])
        if args.check and checked.returncode != 0:
            sys.exit(f"demo check failed: ac-webhook-sync check exited {checked.returncode}:\n{checked.stdout}{checked.stderr}")

        seeded = contacts_by_email(sandbox_url)
        seeded_imports = {i["batch_id"] for i in get_json(f"{sandbox_url}/sandbox/imports")["imports"]}
        rows, started = [], time.time()
        before = seeded
        for name in sorted(os.listdir(events_dir)):
            # import-callback-*.json go to the import-callback function: they report the
            # seed's finished import, whose status that function reads from the sandbox.
            function = "import-callback" if name.startswith("import-callback") else "webhook"
            status, outcome, body = invoke(watch_port, os.path.join(events_dir, name), function)
            if body.get("imports"):
                # The importer works in the background: let its contacts land on this row.
                wait_imports(sandbox_url, 10)
            after = contacts_by_email(sandbox_url)
            rows.append((name[:-5], status, outcome, body, touched(before, after, body)))
            before = after
        # Fault drill: the sandbox misbehaves for the next requests; the function retries.
        with open(os.path.join(events_dir, "form-json.json"), "rb") as f:
            drill_event = f.read()
        for n, fault in enumerate(FAULT_DRILL, start=1):
            post_json(f"{sandbox_url}/sandbox/faults", fault)
            # A new delivery each time: the same one again is answered as a duplicate.
            drill_path = os.path.join(events_dir, f"drill-{n}.json")
            with open(drill_path, "wb") as f:
                f.write(nth_delivery(drill_event, n))
            status, outcome, body = invoke(watch_port, drill_path)
            os.remove(drill_path)
            after = contacts_by_email(sandbox_url)
            label = f"form-json (sandbox: {fault['kind']} {fault.get('status', '')} x{fault['count']})"
            rows.append((label.replace("  ", " "), status, outcome, body, touched(after, after, body)))
        elapsed = time.time() - started
        imports = wait_imports(sandbox_url, 10)
        contacts = contacts_by_email(sandbox_url)
        state = get_json(f"{sandbox_url}/sandbox/state")

        print(f"\nThe sandbox started with {len(seeded)} contacts from local/sandbox-seed.toml:")
        for c in seeded.values():
            print(f"  {describe(c)}")
        width = max(len(r[0]) for r in rows)
        out_width = min(40, max(len(str(r[2])) for r in rows))
        print(f"\n{'event'.ljust(width)}  HTTP  {'outcome'.ljust(out_width)}  contact as the sandbox now holds it")
        for name, status, outcome, _, emails in rows:
            shown = describe(contacts[emails[0]]) if emails else ""
            if len(emails) > 1:
                shown += f"  (+{len(emails) - 1} more)"
            outcome = str(outcome)[:out_width]
            print(f"{name.ljust(width)}  {str(status or 'ERR').ljust(4)}  {outcome.ljust(out_width)}  {shown}")
        print("\nThe re-subscribe rule: mary@ (unsubscribed in the seed) is back on the Newsletter because the "
              "newsletter route is an explicit opt-in;\njon@ stays unsubscribed from Customers because an order is not "
              "(the function read his statuses first and left that list out).")
        for i in (i for i in imports if i["batch_id"] not in seeded_imports):
            print(f"\nBulk import {i['batch_id']}: {i['status']}, {i['contacts']} contacts, {len(i['success'])} created "
                  "(imported contacts are in the sandbox; the importer never re-subscribes)")
        print(f"\nReplayed {len(rows) - len(FAULT_DRILL)} events and {len(FAULT_DRILL)} under faults in {elapsed:.1f}s through `cargo lambda invoke`; "
              f"the sandbox holds {len(contacts)} contacts, allows {state['rate_limit_per_second']} requests/s and "
              f"answered {state['rate_limited_requests']} requests 429 (the function paces itself).")
        if state["ignored"]:
            print("The sandbox ignored: " + "; ".join(state["ignored"]))

        if args.check:
            failures = check(rows, contacts, imports, state)
            if failures:
                sys.exit("demo check failed:\n  " + "\n  ".join(failures))
            synced = sum(1 for r in rows if r[2] == "synced")
            print(f"demo check passed: {synced} synced, {len(contacts)} contacts, statuses "
                  f"{sorted({r[1] for r in rows})}, re-subscribe rule held, fields landed, "
                  f"{time.time() - begun:.1f}s in all")

        if args.keep:
            token = secret["webhook_secrets"]["form"]
            print(f"""
Still running (Ctrl-C stops both):
  webhook function: {base}/webhooks/<route>      secret used: {secret_path}
  ActiveCampaign sandbox: {sandbox_url}          logs: {tmp}/sandbox.log, {tmp}/watch.log
Try:
  curl -i -d 'email=you@example.com&name=You' '{base}/webhooks/form?token={token}'
  curl -s {sandbox_url}/sandbox/contacts        # also /sandbox/lists, /sandbox/tags, /sandbox/fields, /sandbox/state
  curl -s -X POST {sandbox_url}/sandbox/faults -d '{{"kind":"status","status":503,"count":3}}'
  curl -s -X DELETE {sandbox_url}/sandbox/faults""")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stop(watch)
        stop(sandbox)


if __name__ == "__main__":
    main()
