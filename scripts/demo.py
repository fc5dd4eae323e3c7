#!/usr/bin/env python3
"""Runs the webhook function locally, end to end, with no AWS and no ActiveCampaign account.

Starts the ActiveCampaign stand-in (ac-sandbox) and `cargo lambda watch`, replays every
events/ file with `cargo lambda invoke webhook --data-file ...`, prints what each answered and
the contacts the stand-in now holds, then stops everything it started.

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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
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


def invoke(port, event_path):
    out = subprocess.run(
        ["cargo", "lambda", "invoke", "webhook", "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
         "--data-file", event_path, "--output-format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["invoke failed"])[-1]
    response = json.loads(out.stdout)
    status = response.get("statusCode")
    try:
        body = json.loads(response.get("body") or "{}")
    except json.JSONDecodeError:
        body = {}
    outcome = body.get("status") or body.get("error") or ""
    if status == 303:
        outcome = "redirect to " + (response.get("headers", {}).get("location", "?"))
    return status, outcome


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the stand-in and cargo lambda watch running")
    parser.add_argument("--check", action="store_true", help="fail unless every answer is as documented")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="acws-demo-")
    sandbox_port, watch_port = free_port(), free_port()
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
        sandbox = start([os.path.join(ROOT, "target", "debug", "ac-sandbox"), str(sandbox_port)], os.path.join(tmp, "sandbox.log"))
        wait_http(f"{sandbox_url}/sandbox/contacts", 30, sandbox, "ac-sandbox")
        env = dict(os.environ, SECRET_FILE=secret_path, AWS_REGION="us-east-1", RUST_LOG="info")
        watch = start(["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(watch_port),
                       "--ignore-changes", "--env-var", f"SECRET_FILE={secret_path}"],
                      os.path.join(tmp, "watch.log"), env)
        base = f"http://127.0.0.1:{watch_port}/lambda-url/webhook"
        wait_http(f"{base}/health", 300, watch, "cargo lambda watch")

        rows, started = [], time.time()
        # Callback events belong to the import-callback function; the stand-in has no importer yet.
        for name in sorted(n for n in os.listdir(events_dir) if not n.startswith("import-callback")):
            status, outcome = invoke(watch_port, os.path.join(events_dir, name))
            rows.append((name[:-5], status, outcome))
        elapsed = time.time() - started

        width = max(len(r[0]) for r in rows)
        print(f"\n{'event'.ljust(width)}  HTTP  outcome")
        for name, status, outcome in rows:
            print(f"{name.ljust(width)}  {str(status or 'ERR').ljust(4)}  {outcome}")
        with urllib.request.urlopen(f"{sandbox_url}/sandbox/contacts") as r:
            contacts = json.load(r)["contacts"]
        print(f"\nThe ActiveCampaign stand-in now holds {len(contacts)} contacts:")
        for c in contacts:
            name = " ".join(x for x in (c.get("first_name"), c.get("last_name")) if x)
            extras = []
            if c.get("organization"):
                extras.append(f"org={c['organization']}")
            if c.get("lists"):
                extras.append("lists=" + ",".join(f"{k}:{'active' if v == 1 else 'unsubscribed'}" for k, v in c["lists"].items()))
            if c.get("tags"):
                extras.append("tags=" + ",".join(c["tags"]))
            if c.get("fields"):
                extras.append("fields=" + ",".join(f"{k}={v}" for k, v in c["fields"].items()))
            print(f"  {c['email']:<32} {name:<24} {' '.join(extras)}")
        print(f"\nReplayed {len(rows)} events in {elapsed:.1f}s through `cargo lambda invoke webhook`.")

        if args.check:
            statuses = {s for _, s, _ in rows}
            errors = [r for r in rows if r[1] is None or r[1] >= 500]
            missing = {200, 303, 400, 401, 404, 405, 415} - statuses
            synced = sum(1 for r in rows if r[2] == "synced")
            if errors or missing or synced < 15 or len(contacts) < 12:
                sys.exit(f"demo check failed: errors={errors} missing statuses={missing} synced={synced} contacts={len(contacts)}")
            print(f"demo check passed: {synced} synced, {len(contacts)} contacts, statuses {sorted(statuses)}")

        if args.keep:
            print(f"\nStill running (Ctrl-C stops both):\n  webhook function: {base}/webhooks/<route>\n"
                  f"  ActiveCampaign stand-in: {sandbox_url}/sandbox/contacts\n  secret used: {secret_path}\n"
                  f"Try: curl -i -d 'email=you@example.com&name=You' '{base}/webhooks/form?token={secret['webhook_secrets']['form']}'")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stop(watch)
        stop(sandbox)


if __name__ == "__main__":
    main()
