#!/usr/bin/env python3
"""Loss audit: runs the local stack as a user would, under ActiveCampaign faults, and counts
what was lost.

Starts the ActiveCampaign sandbox (target/debug/ac-sandbox, its real 5 requests/s limit and the
bundled seed) and `cargo lambda watch`, then sends --count webhooks with unique emails from
several senders (the plain form route, Shopify, Stripe and WooCommerce, signed with the secrets
of local/secret.json) through the Function URL front of `cargo lambda watch`, from a few
concurrent senders that retry a 503 (or a connection error) later, honouring Retry-After, a
bounded number of times, as real senders do. Meanwhile it switches the sandbox's faults at
random: 503 with and without Retry-After, 500, slow answers (longer and shorter than the
function's per-call timeout), empty bodies, HTML error pages, a wrong key for a while (the key
revoked), a long outage and 429 bursts.

  --mode inline  the webhook function syncs each contact itself (DELIVERY=inline).
  --mode queue   the webhook function queues contacts in SQS (moto) and this script plays the
                 SQS event source mapping: it receives batches of 10 and invokes the
                 sync-worker through cargo lambda watch, deletes what succeeded, and leaves
                 batchItemFailures to come back after the visibility timeout; the worker
                 dead-letters (with a reason) after MAX_RECEIVE_COUNT receives.
  --mode batch   CSV batches through the Bulk Contact Importer, as deployed (DELIVERY=queue, an
                 imports table in moto's DynamoDB, the import-callback function's URL as
                 CALLBACK_URL, the import-reconciler invoked every --reconcile-every seconds).
                 First a clean --rows batch is timed from its POST to its last contact in the
                 sandbox (the importer's real pace: 100 requests a minute). Then --batches
                 batches of --rows rows (unique emails, --invalid invalid ones planted in each)
                 are posted to /webhooks/import while the faults above are switched, and the
                 importer's own outcomes too (/sandbox/import-faults: imports that end failed
                 or interrupted, callbacks never sent); the first batch is posted again
                 unchanged once answered (a poster's repeat), which must be answered
                 `duplicate`. Once the queue is empty and every import record is settled, it
                 checks: each queued row in the sandbox with its fields, the rejected rows
                 exactly the planted ones, every record in the table settled (and as the
                 sandbox ended the import), the DLQ, and how often each contact was written.
                 That count comes from the import records (the contacts of each import, joined
                 with the sandbox's status of it), the sandbox's log (each contact_sync's
                 fields, and the callbacks it lost) and the queue (what a failed import sent
                 back). Imports the product never learnt of (their answer was lost: an empty
                 body) are counted apart: ActiveCampaign gives no way to find them, so only
                 the contacts they created can be named (README, "A bulk import whose answer
                 was lost"); --strict-repeats fails on those too.

Then it clears the faults, lets retries and the queue drain (bounded), compares the sandbox's
contacts with what was sent and prints one summary line (or --json). It exits non-zero on any
loss or wrong field, and stops everything it started, on errors and Ctrl-C too.

    scripts/loss_audit.sh --mode queue            # 2000 webhooks, a few minutes
    scripts/loss_audit.sh --mode inline --quick   # 200 webhooks (2000 inline take 7+ min:
                                                  # ActiveCampaign's 5 requests/s)
    scripts/loss_audit.sh --mode batch            # 3 x 20,000 rows after a 20,000-row pace
                                                  # batch, about 15 min
    scripts/loss_audit.sh --mode batch --quick    # 3 x 2,000 rows, about 5 min
"""
import argparse
import base64
import collections
import contextlib
import csv
import heapq
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import eventgen  # noqa: E402
from eventgen import form as eg_form  # noqa: E402
from eventgen import shopify as eg_shopify  # noqa: E402
from eventgen import stripe as eg_stripe  # noqa: E402
from eventgen import woocommerce as eg_woo  # noqa: E402

REGION = "us-east-1"
RETRY_AFTER_CAP_S = 30
SENDERS = ["form-json", "form-urlencoded", "shopify", "stripe", "woocommerce"]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes (as scripts/demo.py starts and stops them)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline_s, proc=None, what=""):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode}); see its log")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {deadline_s}s")


def wait_tcp(port, deadline_s, proc=None, what=""):
    end = time.time() + deadline_s
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode}); see its log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {deadline_s}s")


def start(cmd, log_path, env=None, append=False):
    out = open(log_path, "a" if append else "w")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def stop(proc):
    """Stops the process group `proc` leads (cargo lambda watch's functions included)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# Small HTTP helpers

def http(method, url, body=None, headers=None, timeout=30):
    """(status, headers, body bytes); status None on a connection error or timeout."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, dict((k.lower(), v) for k, v in r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict((k.lower(), v) for k, v in e.headers.items()), e.read()
    except Exception as e:  # connection refused/reset, timeout
        return None, {}, str(e).encode()


def get_json(url):
    status, _, body = http("GET", url)
    if status != 200:
        raise RuntimeError(f"GET {url}: {status} {body[:200]!r}")
    return json.loads(body)


# ---------------------------------------------------------------------------------------------
# Webhooks: what each sender posts, signed at send time as the sender signs it

class Hook:
    def __init__(self, index, sender, run_id):
        self.index = index
        self.sender = sender
        self.email = f"audit-{run_id}-{index:05d}@example.com"
        self.first = f"Fn{index:05d}"
        self.last = f"Ln{sender.split('-')[0].capitalize()}{index:05d}"
        # The fields every sender carries; the phone and company of those that send them.
        self.expected = {"first_name": self.first, "last_name": self.last}
        if sender in ("form-json", "shopify", "woocommerce"):
            self.expected["organization"] = f"Org {index:05d}"
        self.attempts = []   # (HTTP status or None, Retry-After or None, outcome)
        self.final = None    # the last attempt

    def request(self):
        """(path and query, headers, body) for one delivery attempt."""
        i, email = self.index, self.email
        if self.sender == "form-json":
            body = eventgen.compact({"email": email, "first_name": self.first, "last_name": self.last,
                                     "company": self.expected["organization"]})
            return f"/webhooks/form?token={eg_form.FORM_TOKEN}", {"content-type": "application/json"}, body
        if self.sender == "form-urlencoded":
            body = urllib.parse.urlencode({"email": email, "first_name": self.first, "last_name": self.last}).encode()
            return (f"/webhooks/form?token={eg_form.FORM_TOKEN}",
                    {"content-type": "application/x-www-form-urlencoded", "user-agent": "Mozilla/5.0"}, body)
        if self.sender == "shopify":
            customer = dict(eg_shopify.SHOPIFY_CUSTOMER, id=900000000000 + i, email=email, first_name=self.first,
                            last_name=self.last, phone=None,
                            email_marketing_consent={"state": "not_subscribed"},
                            default_address={"first_name": self.first, "last_name": self.last,
                                             "company": self.expected["organization"], "default": True},
                            addresses=[{"company": self.expected["organization"]}])
            ev = eg_shopify.shopify("shopify", "customers/create", customer)
            ev["headers"]["x-shopify-webhook-id"] = f"audit-webhook-{i}"
            ev["headers"]["x-shopify-event-id"] = f"audit-event-{i}"
        elif self.sender == "stripe":
            customer = dict(eg_stripe.STRIPE_CUSTOMER, id=f"cus_audit{i}", email=email,
                            name=f"{self.first} {self.last}", phone=None)
            payload = eg_stripe.stripe_event("customer.created", customer, f"evt_audit_{i}")
            # Stripe signs every delivery attempt afresh (t= is the attempt's time).
            ev = eg_stripe.stripe(payload, int(time.time()))
        elif self.sender == "woocommerce":
            customer = dict(eg_woo.WC_CUSTOMER, id=100000 + i, email=email, first_name=self.first,
                            last_name=self.last, username=f"audit{i}",
                            billing={"first_name": self.first, "last_name": self.last,
                                     "company": self.expected["organization"], "email": email, "phone": ""})
            ev = eg_woo.woo("customer.created", customer)
            ev["headers"]["x-wc-webhook-delivery-id"] = f"audit{i:028d}"
        else:
            raise ValueError(self.sender)
        return event_to_request(ev)


def event_to_request(ev):
    """A Function URL event (as scripts/eventgen builds them) back into an HTTP request."""
    path = ev["rawPath"] + (f"?{ev['rawQueryString']}" if ev.get("rawQueryString") else "")
    headers = {k: v for k, v in ev["headers"].items() if k not in ("host", "content-length")}
    body = ev.get("body") or ""
    body = base64.b64decode(body) if ev.get("isBase64Encoded") else body.encode()
    return path, headers, body


# ---------------------------------------------------------------------------------------------
# Senders: a few threads, a shared schedule, and a sender-style retry

class Senders:
    def __init__(self, base_url, hooks, threads, max_attempts, rate, stop_event, timeout_s):
        self.base_url = base_url
        self.max_attempts = max_attempts
        self.rate = rate
        self.stop_event = stop_event
        self.timeout_s = timeout_s
        self.lock = threading.Condition()
        # (not before, sequence, hook): first attempts in order, retries when due.
        self.heap = []
        interval = 1.0 / rate if rate else 0.0
        begin = time.time()
        for n, hook in enumerate(hooks):
            heapq.heappush(self.heap, (begin + n * interval, n, hook))
        self.sequence = len(hooks)
        self.pending = len(hooks)   # hooks without a final answer yet
        self.in_flight = 0
        self.retries_waiting = 0
        self.threads = [threading.Thread(target=self.run, daemon=True, name=f"sender-{n}") for n in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def done(self):
        with self.lock:
            return self.pending == 0

    def run(self):
        while not self.stop_event.is_set():
            with self.lock:
                while not self.heap and self.pending > 0 and not self.stop_event.is_set():
                    self.lock.wait(0.5)
                if not self.heap:
                    return
                due, _, hook = self.heap[0]
                wait = due - time.time()
                if wait > 0:
                    self.lock.wait(min(wait, 0.5))
                    continue
                heapq.heappop(self.heap)
                if hook.attempts:
                    self.retries_waiting -= 1
                self.in_flight += 1
            self.attempt(hook)

    def attempt(self, hook):
        path, headers, body = hook.request()
        status, answer_headers, raw = http("POST", self.base_url + path, body, headers, timeout=self.timeout_s)
        retry_after = answer_headers.get("retry-after")
        try:
            outcome = json.loads(raw).get("status") or json.loads(raw).get("error") or ""
        except Exception:
            outcome = raw[:120].decode(errors="replace")
        try:
            reason = json.loads(raw).get("reason")
        except Exception:
            reason = None
        hook.attempts.append((status, retry_after, outcome, reason))
        # Real senders retry any failure; this one retries 5xx and connection errors.
        retryable = status is None or status >= 500
        with self.lock:
            self.in_flight -= 1
            if retryable and len(hook.attempts) < self.max_attempts and not self.stop_event.is_set():
                delay = None
                if retry_after is not None:
                    try:
                        delay = float(retry_after)
                    except ValueError:
                        delay = None
                if delay is None:
                    delay = 2 ** len(hook.attempts)
                delay = min(max(delay, 0.5), RETRY_AFTER_CAP_S)
                heapq.heappush(self.heap, (time.time() + delay, self.sequence, hook))
                self.sequence += 1
                self.retries_waiting += 1
            else:
                hook.final = hook.attempts[-1]
                self.pending -= 1
            self.lock.notify_all()


# ---------------------------------------------------------------------------------------------
# Faults, switched at random in the sandbox

FAULT_KINDS = ["status", "slow", "empty", "html", "wrong_key"]
SKIPPED = set()   # fault kinds left out (--skip)


def fault_schedule(quick, rng, short_only=False):
    """[(label, fault JSON, seconds held)]: every kind once, in random order (`short_only`:
    without the wrong key and the long outage, for the rounds after the first)."""
    s = 0.5 if quick else 1.0
    faults = [
        ("503 + Retry-After", {"kind": "status", "status": 503, "retry_after": 3}, 12 * s),
        ("503 without Retry-After", {"kind": "status", "status": 503}, 10 * s),
        ("500", {"kind": "status", "status": 500}, 8 * s),
        ("slow 12 s (over the 10 s call timeout)", {"kind": "slow", "delay_ms": 12000}, 15),
        ("slow 1.5 s", {"kind": "slow", "delay_ms": 1500}, 10 * s),
        ("empty bodies", {"kind": "empty"}, 8 * s),
        ("HTML 502 pages", {"kind": "html", "status": 502}, 8 * s),
        ("wrong key (revoked)", {"kind": "wrong_key"}, rng.uniform(20, 25) if quick else rng.uniform(20, 40)),
        ("outage (503 + Retry-After)", {"kind": "status", "status": 503, "retry_after": 5}, 30 if quick else 60),
        ("429 burst", {"kind": "status", "status": 429, "retry_after": 2, "count": 15}, 6 * s),
    ]
    if short_only:
        faults = [f for f in faults if f[1]["kind"] != "wrong_key" and not f[0].startswith("outage")]
    faults = [f for f in faults if f[1]["kind"] not in SKIPPED]
    rng.shuffle(faults)
    return faults


def gap_seconds(quick, rng):
    return rng.uniform(3, 6) if quick else rng.uniform(5, 12)


class Chaos:
    def __init__(self, sandbox_url, schedule, quick, rng, keep_going):
        self.sandbox_url = sandbox_url
        self.schedule = schedule
        self.quick = quick
        self.rng = rng
        self.keep_going = keep_going   # callable: cycle again while it says so
        # Set to stop switching faults (the run is over, or nothing is left to hit).
        self.halt = threading.Event()
        self.timeline = []             # (seconds since start, label, seconds held)
        self.current = None
        self.begun = time.time()
        self.thread = threading.Thread(target=self.run, daemon=True, name="chaos")

    def set(self, fault):
        http("POST", f"{self.sandbox_url}/sandbox/faults", json.dumps(fault).encode(),
             {"content-type": "application/json"})

    def clear(self):
        http("DELETE", f"{self.sandbox_url}/sandbox/faults")

    def run(self):
        schedule, rounds = list(self.schedule), 1
        while not self.halt.is_set():
            if not schedule:
                if not self.keep_going():
                    break
                # Later rounds (inline, while webhooks are still being answered): the short
                # faults only, further apart, so the run stays bounded.
                schedule, rounds = fault_schedule(self.quick, self.rng, short_only=True), rounds + 1
            label, fault, hold = schedule.pop(0)
            if self.halt.wait(gap_seconds(self.quick, self.rng) * (1 if rounds == 1 else 2)):
                break
            self.current = label
            on = time.time()
            log(f"fault on: {label} for {hold:.0f}s {json.dumps(fault)}")
            self.set(fault)
            self.halt.wait(hold)
            self.clear()
            self.timeline.append((round(on - self.begun, 1), label, round(time.time() - on, 1)))
            self.current = None
            log(f"fault off: {label}")
        self.clear()


def schedule_length(schedule, quick):
    gap = 4.5 if quick else 8.5
    return sum(hold + gap for _, _, hold in schedule)


# ---------------------------------------------------------------------------------------------
# Queue mode: moto's SQS, and this script as the SQS event source mapping

class Queues:
    def __init__(self, endpoint, visibility_timeout, max_receive_count):
        import boto3  # in .venv, with moto
        self.boto3 = boto3
        self.endpoint = endpoint
        sqs = self.client()
        self.dlq_url = sqs.create_queue(QueueName="contacts-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # As template.yaml: SQS's own redrive is a backstop behind the worker's dead-lettering.
        self.url = sqs.create_queue(QueueName="contacts", Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(2 * max_receive_count)}),
        })["QueueUrl"]
        self.arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def client(self):
        return self.boto3.session.Session().client(
            "sqs", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing")

    def depth(self, sqs=None):
        sqs = sqs or self.client()
        a = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])

    def read_dlq(self):
        """Every dead letter: (contact email or None, reason)."""
        sqs = self.client()
        letters, empty = [], 0
        while empty < 3:
            got = sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                      VisibilityTimeout=600, MessageAttributeNames=["All"]).get("Messages", [])
            if not got:
                empty += 1
                continue
            empty = 0
            for m in got:
                reason = (m.get("MessageAttributes", {}).get("reason") or {}).get("StringValue")
                try:
                    email = json.loads(m["Body"])["contact"]["email"]
                except Exception:
                    email = None
                letters.append((email, reason or "(no reason: SQS redrive)"))
        return letters


class EventSourceMapping:
    """Receives batches from the queue and invokes the sync-worker, as Lambda's SQS trigger
    does with ReportBatchItemFailures."""

    def __init__(self, queues, invoke_url, pollers, batch_window_s, stop_event):
        self.queues = queues
        self.invoke_url = invoke_url
        self.batch_window_s = batch_window_s
        self.stop_event = stop_event
        self.lock = threading.Lock()
        self.stats = collections.Counter()
        # Called with each batch of messages received, before the sync-worker sees it, and
        # again once the batch is done with (deleted, or left to come back).
        self.observe = None
        self.release = None
        # Set to a lock to receive one poller at a time: moto's ReceiveMessage is not atomic,
        # and two concurrent receives can both take one message.
        self.receive_lock = None
        self.threads = [threading.Thread(target=self.run, daemon=True, name=f"esm-{n}") for n in range(pollers)]

    def start(self):
        for t in self.threads:
            t.start()

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def run(self):
        sqs = self.queues.client()
        while not self.stop_event.is_set():
            try:
                self.poll(sqs)
            except Exception as e:  # moto hiccup: the messages come back after their timeout
                self.count("poll errors")
                log(f"event source mapping: {e}")
                self.stop_event.wait(1)

    def poll(self, sqs):
        messages = []
        window_end = None
        while len(messages) < 10 and not self.stop_event.is_set():
            with self.receive_lock or contextlib.nullcontext():
                got = sqs.receive_message(QueueUrl=self.queues.url, MaxNumberOfMessages=10 - len(messages),
                                          WaitTimeSeconds=1, AttributeNames=["All"],
                                          MessageAttributeNames=["All"]).get("Messages", [])
            messages += got
            if messages and window_end is None:
                window_end = time.time() + self.batch_window_s
            if window_end is not None and time.time() >= window_end:
                break
        if not messages:
            return
        if self.observe is not None:
            self.observe(messages)
        try:
            self.invoke(sqs, messages)
        finally:
            if self.release is not None:
                self.release(messages)

    def invoke(self, sqs, messages):
        event = {"Records": [self.record(m) for m in messages]}
        status, _, raw = http("POST", self.invoke_url, json.dumps(event).encode(),
                              {"content-type": "application/json"}, timeout=180)
        self.count("invocations")
        self.count("messages received", len(messages))
        try:
            answer = json.loads(raw) if status == 200 else None
        except Exception:
            answer = None
        if not isinstance(answer, dict) or "errorType" in answer or "errorMessage" in answer:
            # A function error: the whole batch comes back after the visibility timeout.
            if not self.stop_event.is_set():
                self.count("function errors")
                log(f"sync-worker invocation failed: {status} {raw[:200]!r}")
            return
        failed = {f.get("itemIdentifier") for f in answer.get("batchItemFailures") or []}
        self.count("batch item failures", len(failed))
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start:start + 10]
            out = sqs.delete_message_batch(QueueUrl=self.queues.url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)])
            if out.get("Failed"):
                self.count("delete failures", len(out["Failed"]))
        self.count("deleted", len(done))

    def record(self, m):
        attributes = dict(m.get("Attributes", {}))
        attributes.setdefault("ApproximateReceiveCount", "1")
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": attributes,
            "messageAttributes": {k: {"stringValue": v.get("StringValue"), "dataType": v.get("DataType", "String"),
                                      "stringListValues": [], "binaryListValues": []}
                                  for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queues.arn,
            "awsRegion": REGION,
        }


# ---------------------------------------------------------------------------------------------
# The verdict

def verdict(mode, hooks, contacts, dead_letters):
    dlq_emails = collections.Counter(e for e, _ in dead_letters if e)
    counts = collections.Counter()
    rejected_reasons = collections.Counter()
    lost, wrong = [], []
    for hook in hooks:
        status, retry_after, outcome, reason = hook.final
        contact = contacts.get(hook.email)
        got_503 = any(a[0] == 503 for a in hook.attempts)
        if contact is not None and got_503:
            counts["retried and landed"] += 1
        if status is not None and 200 <= status < 300:
            if outcome in ("synced", "queued"):
                counts["acknowledged"] += 1
                if contact is None:
                    if hook.email in dlq_emails:
                        counts["acknowledged, dead-lettered"] += 1
                    else:
                        lost.append((hook, f"acknowledged {outcome!r} but not in the sandbox"))
            else:
                counts["rejected" if outcome == "rejected" else "other 2xx"] += 1
                if outcome == "rejected":
                    rejected_reasons[reason or ""] += 1
                if contact is None:
                    lost.append((hook, f"answered {outcome!r} ({reason}) and not in the sandbox"))
        elif status == 503 and retry_after is not None:
            counts["refused"] += 1
            if contact is not None:
                counts["refused but landed"] += 1
        else:
            counts["failed other"] += 1
            if contact is not None:
                counts["failed but landed"] += 1
        if contact is not None:
            diffs = {k: (v, contact.get(k)) for k, v in hook.expected.items() if contact.get(k) != v}
            if contact.get("tags"):
                diffs["tags"] = ([], contact["tags"])
            if contact.get("lists"):
                diffs["lists"] = ([], contact["lists"])
            if diffs:
                wrong.append((hook, diffs))
    by_reason = collections.Counter(r for _, r in dead_letters)
    return {
        "mode": mode,
        "sent": len(hooks),
        "acknowledged": counts["acknowledged"],
        "rejected": counts["rejected"],
        "rejected_reasons": dict(rejected_reasons),
        "other_2xx": counts["other 2xx"],
        "refused": counts["refused"],
        "refused_but_landed": counts["refused but landed"],
        "failed_other": counts["failed other"],
        "failed_other_but_landed": counts["failed but landed"],
        "lost": len(lost),
        "lost_examples": [{"email": h.email, "sender": h.sender, "why": why,
                           "attempts": [list(a) for a in h.attempts]} for h, why in lost[:10]],
        "lost_by_sender": dict(collections.Counter(h.sender for h, _ in lost)),
        "wrong_fields": len(wrong),
        "wrong_field_examples": [{"email": h.email, "sender": h.sender, "expected_vs_got": d} for h, d in wrong[:10]],
        "retried_and_landed": counts["retried and landed"],
        "dead_lettered": len(dead_letters),
        "dead_lettered_by_reason": dict(by_reason),
        "acknowledged_then_dead_lettered": counts["acknowledged, dead-lettered"],
        "final_statuses": dict(collections.Counter(str(h.final[0]) for h in hooks)),
        "attempts": sum(len(h.attempts) for h in hooks),
    }


def worker_rejections(watch_log):
    """What the sync-worker logged as rejected (and so deleted from the queue), by reason."""
    reasons = collections.Counter()
    try:
        with open(watch_log, errors="replace") as f:
            for line in f:
                if "ActiveCampaign rejected a queued contact." in line:
                    reasons[line.partition(" reason=")[2].strip() or "?"] += 1
    except OSError:
        pass
    return dict(reasons)


def summary_line(r):
    reasons = ", ".join(f"{n} {reason!r}" for reason, n in r["dead_lettered_by_reason"].items()) or "none"
    lost_detail = ""
    if r["lost"]:
        parts = [f"{n} answered rejected {reason!r}" for reason, n in r["rejected_reasons"].items()]
        missing = r["lost"] - sum(r["rejected_reasons"].values())
        if missing:
            parts.append(f"{missing} acknowledged but missing")
        for reason, n in (r.get("worker_rejected_by_reason") or {}).items():
            parts.append(f"the sync-worker dropped {n} as rejected {reason!r}")
        lost_detail = f" ({'; '.join(parts)})"
    extra = ""
    if r["other_2xx"]:
        extra += f", other 2xx {r['other_2xx']}"
    if r["failed_other"]:
        extra += f", failed otherwise {r['failed_other']} (final status {r['final_statuses']})"
    return (f"loss audit ({r['mode']}): sent {r['sent']}, acknowledged {r['acknowledged']}, "
            f"rejected {r['rejected']}, refused {r['refused']} (503 + Retry-After){extra}, "
            f"lost {r['lost']}{lost_detail}, wrong fields {r['wrong_fields']}, "
            f"retried and landed {r['retried_and_landed']}, dead-lettered {r['dead_lettered']} "
            f"(by reason: {reasons})")


# ---------------------------------------------------------------------------------------------
# Batch mode: CSV batches through the Bulk Contact Importer, import records in DynamoDB, the
# import-callback and the import-reconciler

BATCH_ROUTE = "import"
BATCH_TOKEN = "local-import-token"
BATCH_TAGS = ["import"]          # mapping.toml: [routes.import] tags
NEWSLETTER_LIST = 1              # [[routes.import.lists]] id = 1, status = "consent"
IMPORTS_TABLE_NAME = "ac-webhook-sync-imports"
ANSWER_PREFIX = "batch-body#"    # the imports table's items that keep a batch's first answer


def invalid_email(batch, j):
    """The j-th planted address of a batch: each shape is one the product refuses as no address."""
    shapes = [
        "b{b}-bad{j}-no-at-sign.example.com",
        "b{b}-bad{j}@nodot",
        "@b{b}-bad{j}.example.com",
        "b{b} bad{j}@example.com",
        "b{b}-bad{j}@example..com",
        "b{b}-bad{j}@.example.com",
        "b{b}-bad{j}@example.com.",
        "b{b}-bad{j}@x@example.com",
    ]
    return shapes[j % len(shapes)].format(b=batch, j=j)


class Batch:
    """One CSV batch: its rows, the invalid ones planted in it, and what its poster saw."""

    def __init__(self, index, label, run_id, rows, invalid, rng):
        self.index = index
        self.label = label
        self.expected = {}      # email -> the fields the sandbox should hold
        self.first_names = {}   # first name -> email (the sandbox logs contact_sync by field)
        self.planted = {}       # CSV line (the header is line 1) -> planted address
        bad_rows = set(rng.sample(range(rows), invalid)) if invalid else set()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["Email", "First Name", "Last Name", "Company", "Newsletter"])
        bad = 0
        for i in range(rows):
            first = f"F{index}r{i:05d}"
            last = f"L{index}r{i:05d}x{run_id}"
            company = f"Org {index}-{i:05d}"
            newsletter = "yes" if i % 7 == 3 else ""
            if i in bad_rows:
                email = invalid_email(index, bad)
                bad += 1
                self.planted[i + 2] = email
            else:
                email = f"b{index}-{run_id}-{i:05d}@example.com"
                self.expected[email] = {
                    "first_name": first, "last_name": last, "organization": company,
                    "tags": list(BATCH_TAGS),
                    "lists": [NEWSLETTER_LIST] if newsletter else [],
                }
                self.first_names[first] = email
            writer.writerow([email, first, last, company, newsletter])
        self.body = out.getvalue().encode()
        self.rows = rows
        self.attempts = []      # (HTTP status or None, Retry-After, answer JSON or text, seconds)
        self.answer = None      # the final answer's JSON (None if it never came)
        self.status = None
        self.posted_at = None   # first POST
        self.answered_at = None
        self.complete_at = None  # every row it had queued present in the sandbox
        self.repeat = None      # (status, answer) of the poster's repeat, if this batch is repeated


def post_batch(front, batch, max_attempts, stop_event, body=None, attempts=None):
    """POSTs a batch as a poster does: a 503 (or no answer) is retried later, honouring
    Retry-After, a bounded number of times. Returns (status, answer JSON or None)."""
    url = f"{front}/webhooks/{BATCH_ROUTE}?token={BATCH_TOKEN}"
    body = batch.body if body is None else body
    attempts = batch.attempts if attempts is None else attempts
    status, answer = None, None
    for n in range(max_attempts):
        began = time.time()
        status, headers, raw = http("POST", url, body, {"content-type": "text/csv"}, timeout=300)
        try:
            answer = json.loads(raw)
        except Exception:
            answer = None
        attempts.append((status, headers.get("retry-after"),
                         answer if answer is not None else raw[:200].decode(errors="replace"),
                         round(time.time() - began, 2)))
        if status is not None and status < 500:
            break
        delay = None
        try:
            delay = float(headers.get("retry-after"))
        except (TypeError, ValueError):
            delay = None
        delay = min(max(delay if delay is not None else 2 ** (n + 1), 0.5), RETRY_AFTER_CAP_S)
        log(f"{batch.label}: {status} {raw[:120]!r}; posting again in {delay:.0f}s")
        if stop_event.wait(delay):
            break
    return status, answer


class Imports:
    """moto's DynamoDB: the imports table, created as template.yaml defines it."""

    def __init__(self, endpoint):
        import boto3
        self.client = boto3.session.Session().client(
            "dynamodb", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing")
        self.client.create_table(
            TableName=IMPORTS_TABLE_NAME, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "ref", "AttributeType": "S"},
                                  {"AttributeName": "open", "AttributeType": "S"},
                                  {"AttributeName": "submitted_at", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "ref", "KeyType": "HASH"}],
            # The open imports, which the reconciler queries.
            GlobalSecondaryIndexes=[{
                "IndexName": "open-imports",
                "KeySchema": [{"AttributeName": "open", "KeyType": "HASH"},
                              {"AttributeName": "submitted_at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}}])

    def scan(self, attributes=None):
        """Every item, as plain values."""
        items, start = [], None
        while True:
            kwargs = {"TableName": IMPORTS_TABLE_NAME, "ConsistentRead": True}
            if attributes:
                kwargs["ProjectionExpression"] = ", ".join(f"#a{n}" for n in range(len(attributes)))
                kwargs["ExpressionAttributeNames"] = {f"#a{n}": a for n, a in enumerate(attributes)}
            if start:
                kwargs["ExclusiveStartKey"] = start
            out = self.client.scan(**kwargs)
            for item in out.get("Items", []):
                items.append({k: next(iter(v.values())) for k, v in item.items()})
            start = out.get("LastEvaluatedKey")
            if not start:
                return items

    def open_count(self):
        return sum(1 for i in self.scan(["ref", "status"])
                   if not i["ref"].startswith(ANSWER_PREFIX) and i.get("status") == "submitted")


class Reconciler:
    """Invokes the import-reconciler every `every` seconds, as its schedule would."""

    def __init__(self, invoke_url, every, stop_event):
        self.invoke_url = invoke_url
        self.every = every
        self.stop_event = stop_event
        self.runs = []          # (seconds since start, report JSON or error text)
        self.totals = collections.Counter()
        self.begun = time.time()
        self.thread = threading.Thread(target=self.run, daemon=True, name="reconciler")

    def invoke(self):
        status, _, raw = http("POST", self.invoke_url, b"{}", {"content-type": "application/json"}, timeout=120)
        try:
            report = json.loads(raw) if status == 200 else None
        except Exception:
            report = None
        at = round(time.time() - self.begun, 1)
        if not isinstance(report, dict) or "errorType" in report or "errorMessage" in report:
            self.runs.append((at, f"{status} {raw[:200]!r}"))
            self.totals["failed runs"] += 1
            log(f"import-reconciler invocation failed: {status} {raw[:200]!r}")
            return None
        self.runs.append((at, report))
        self.totals["runs"] += 1
        for key in ("open", "settled", "pending", "errors"):
            self.totals[key] += int(report.get(key) or 0)
        if report.get("settled") or report.get("errors"):
            log(f"import-reconciler: {json.dumps(report)}")
        return report

    def run(self):
        while not self.stop_event.wait(self.every):
            self.invoke()


class ImportFaults:
    """Switches the importer's own outcomes (`/sandbox/import-faults`) one step at a time:
    each step is posted once the previous one is used up, a little later. One import that
    ends failed is kept for the moment a 503 with Retry-After is switched on, so its callback
    meets ActiveCampaign refusing (its import/info is retried within the callback's budget,
    then the contacts are sent back with what is left of it)."""

    def __init__(self, sandbox_url, steps, rng, spread_s, stop_event):
        self.url = f"{sandbox_url}/sandbox/import-faults"
        self.steps = list(steps)
        self.rng = rng
        # The steps are spread over about this long, so they meet the faults too.
        self.gap_s = spread_s / max(len(self.steps), 1)
        self.stop_event = stop_event
        self.applied = []       # (seconds since start, step, why)
        self.used = []          # steps used up
        self.begun = time.time()
        self.lock = threading.Lock()   # one step pending at a time (a POST replaces the last)
        self.kept = {"fail": 1}        # posted as a 503 with Retry-After switches on
        self.thread = threading.Thread(target=self.run, daemon=True, name="import-faults")

    def left(self):
        try:
            return get_json(self.url)
        except Exception:
            return None

    def post_if_clear(self, step, why):
        """Posts `step` unless another is still pending."""
        with self.lock:
            left = self.left()
            if left is None or any(left.values()):
                return False
            http("POST", self.url, json.dumps(step).encode(), {"content-type": "application/json"})
            self.applied.append((round(time.time() - self.begun, 1), step, why))
            log(f"import fault on ({why}): {json.dumps(step)}")
            return True

    def wait_used(self, step):
        while not self.stop_event.wait(0.5):
            left = self.left()
            if left is not None and not any(left.values()):
                self.used.append(step)
                log(f"import fault used up: {json.dumps(step)}")
                return True
        return False

    def fault_switching_on(self, fault):
        """Called by the fault schedule just before it switches `fault` on."""
        if (self.kept and self.thread.is_alive() and fault.get("kind") == "status"
                and fault.get("status") == 503 and fault.get("retry_after")):
            step = self.kept
            if self.post_if_clear(step, "with a 503 + Retry-After"):
                self.kept = None
                threading.Thread(target=self.wait_used, args=(step,), daemon=True).start()

    def run(self):
        # First the kept step, at the next 503 with Retry-After (posted by fault_switching_on),
        # or at random if none comes within about a third of the schedule.
        until = time.time() + self.gap_s * len(self.steps) / 2
        while self.kept and time.time() < until:
            if self.stop_event.wait(0.5):
                return
        step = self.kept
        if step and self.post_if_clear(step, "no 503 + Retry-After came"):
            self.kept = None
            if not self.wait_used(step):
                return
        for step in self.steps:
            if self.stop_event.wait(self.rng.uniform(0.3, 1.0) * self.gap_s / 2):
                return
            while not self.post_if_clear(step, "at random"):
                if self.stop_event.wait(0.5):
                    return
            if not self.wait_used(step):
                return

    def all_steps(self):
        return self.steps + [{"fail": 1}]

    def done(self):
        return self.kept is None and len(self.used) == len(self.steps) + 1


FAULTS_CLEARED_MARK = "loss audit: faults cleared"


class MarkedChaos(Chaos):
    """The fault schedule, with each clearing marked in the sandbox's log (opened for
    appending, so the marks fall between its own lines)."""

    def __init__(self, log_path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_path = log_path
        self.before_set = None   # called with each fault before it is switched on

    def set(self, fault):
        if self.before_set is not None:
            self.before_set(fault)
        super().set(fault)

    def clear(self):
        super().clear()
        with open(self.log_path, "a") as f:
            f.write(f"{FAULTS_CLEARED_MARK}\n")


def import_fault_steps(rng):
    """Two imports that end failed and two interrupted, one of each with its callback lost,
    and a completed import whose callback is lost: the callback settles some, the reconciler
    the others (and one more failed import, kept for a 503: see ImportFaults)."""
    steps = [{"fail": 1}, {"interrupt": 1}, {"lose_callbacks": 1},
             {"fail": 1, "lose_callbacks": 1}, {"interrupt": 1, "lose_callbacks": 1}]
    rng.shuffle(steps)
    return steps


class Sends:
    """What reached the contact queue, counted once per message (at its first receive): the
    webhook's batch messages and the contacts a failed import sent back, per email."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = set()
        self.in_batch_messages = collections.Counter()   # email -> batch messages holding it
        self.requeued = collections.Counter()            # email -> requeued-contact messages
        self.other = collections.Counter()               # single contacts of generation 0
        # A message received while a poller still holds it: the queue delivered it twice.
        self.held = set()
        self.delivered_twice = 0
        self.delivered_twice_emails = set()

    def release(self, messages):
        with self.lock:
            for m in messages:
                self.held.discard(m["MessageId"])

    def __call__(self, messages):
        with self.lock:
            for m in messages:
                if m["MessageId"] in self.held:
                    self.delivered_twice += 1
                    try:
                        body = json.loads(m["Body"])
                        emails = ([c.get("email") for c in body["contacts"]] if isinstance(body.get("contacts"), list)
                                  else [body["contact"].get("email")])
                        self.delivered_twice_emails.update(emails)
                    except Exception:
                        pass
                self.held.add(m["MessageId"])
                if m["MessageId"] in self.seen:
                    continue
                self.seen.add(m["MessageId"])
                try:
                    body = json.loads(m["Body"])
                except Exception:
                    continue
                if isinstance(body.get("contacts"), list):
                    for c in body["contacts"]:
                        self.in_batch_messages[c.get("email")] += 1
                elif isinstance(body.get("contact"), dict):
                    email = body["contact"].get("email")
                    if int(body.get("generation") or 0) >= 1:
                        self.requeued[email] += 1
                    else:
                        self.other[email] += 1


def sandbox_log_events(path):
    """From the sandbox's log: contact_syncs by first name, and imports by how they ended and
    whether their callback was lost."""
    syncs, unanswered = collections.Counter(), collections.Counter()
    ended, lost, callback_errors = {}, set(), 0
    in_sync = empty = False
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("ActiveCampaign stand-in received contact_sync:"):
                    in_sync = True
                    continue
                if in_sync and line.startswith("  "):
                    key, _, value = line.strip().partition(" = ")
                    if key == "first_name":
                        syncs[value] += 1
                        unanswered[value] += empty
                    continue
                in_sync = False
                # The sandbox logs each fault switched on; this script marks when it clears
                # them (the empty-body fault answers a handled request with nothing).
                if line.startswith("ActiveCampaign stand-in: fault switched on:"):
                    empty = '"kind":"empty"' in line
                elif line.startswith(FAULTS_CLEARED_MARK):
                    empty = False
                if line.startswith("ActiveCampaign stand-in lost the callback of import "):
                    lost.add(line.split("import ", 1)[1].split()[0])
                elif line.startswith("ActiveCampaign stand-in ended import "):
                    words = line.split()
                    ended[words[4]] = words[5].rstrip(":")
                elif "could not call the import callback" in line:
                    callback_errors += 1
    except OSError:
        pass
    return (syncs, unanswered), ended, lost, callback_errors


def watch_log_counts(path):
    """What the functions logged that the verdict uses (their logs share watch.log)."""
    counts = collections.Counter()
    needles = {
        "Batch queued.": "batches queued",
        "Import not recorded": "imports not recorded",
        "Bulk import queued.": "bulk imports queued",
        "Bulk import refused by validation.": "bulk imports refused by validation",
        "Queue unavailable for a batch": "batches imported inline",
        "Contacts of a repeatedly failing import dead-lettered.": "import contacts dead-lettered",
        "Import callback not accepted.": "callbacks not accepted",
        "Bulk import finished.": "imports settled",
    }
    try:
        with open(path, errors="replace") as f:
            for line in f:
                for needle, key in needles.items():
                    if needle in line:
                        counts[key] += 1
    except OSError:
        pass
    return dict(counts)


def read_dlq_batch(queues):
    """Every dead letter: (its emails, reason); a batch message carries many contacts."""
    sqs = queues.client()
    letters, empty = [], 0
    while empty < 3:
        got = sqs.receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  VisibilityTimeout=600, MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            empty += 1
            continue
        empty = 0
        for m in got:
            reason = (m.get("MessageAttributes", {}).get("reason") or {}).get("StringValue")
            emails = []
            try:
                body = json.loads(m["Body"])
                if isinstance(body.get("contact"), dict):
                    emails = [body["contact"].get("email")]
                elif isinstance(body.get("contacts"), list):
                    emails = [c.get("email") for c in body["contacts"] if isinstance(c, dict)]
            except Exception:
                pass
            letters.append((emails, reason or "(no reason: SQS redrive)"))
    return letters


def sandbox_contacts(sandbox_url):
    got = get_json(f"{sandbox_url}/sandbox/contacts")
    contacts = got["contacts"] if isinstance(got, dict) else got
    return {c["email"]: c for c in contacts}


def sandbox_tags(sandbox_url):
    return {t["tag"]: t["contacts"] for t in get_json(f"{sandbox_url}/sandbox/tags")["tags"]}


def sandbox_imports(sandbox_url):
    return {i["batch_id"]: i for i in get_json(f"{sandbox_url}/sandbox/imports")["imports"]}


def contact_diffs(expected, contact):
    got_lists = sorted(l["id"] for l in contact.get("lists") or [] if l.get("status") == "active")
    other_lists = [l for l in contact.get("lists") or [] if l.get("status") != "active"]
    diffs = {}
    for key in ("first_name", "last_name", "organization"):
        if contact.get(key) != expected[key]:
            diffs[key] = (expected[key], contact.get(key))
    if sorted(contact.get("tags") or []) != sorted(expected["tags"]):
        diffs["tags"] = (expected["tags"], contact.get("tags"))
    if got_lists != sorted(expected["lists"]) or other_lists:
        diffs["lists"] = (expected["lists"], contact.get("lists"))
    return diffs


def batch_verdict(batches, pace, repeat_of, contacts, sb_imports, seed_imports, records, answers_kept,
                  dead_letters, log_syncs, log_ended, log_lost, reconciler, import_faults, watch_counts,
                  run_id, drained, sends):
    # `batches` are those posted under faults; the pace batch's contacts are checked alike.
    every = batches + ([pace] if pace else [])
    expected = {}
    for b in every:
        expected.update(b.expected)
    first_name_to_email = {}
    for b in every:
        first_name_to_email.update(b.first_names)
    ours_prefix = tuple(f"b{b.index}-{run_id}-" for b in every)
    dlq_emails = collections.Counter(e for emails, _ in dead_letters for e in emails if e)

    # The answers.
    answered_queued, rejected_ok, problems = 0, True, []
    queued_emails = set()
    for b in every:
        a = b.answer if isinstance(b.answer, dict) else {}
        if b.status == 200 and a.get("status") == "queued":
            answered_queued += b is not pace
        else:
            problems.append(f"{b.label} answered {b.status} {str(b.answer)[:200]}")
        got = {(r.get("row"), r.get("email")) for r in a.get("rejected") or []}
        want = set(b.planted.items())
        if got != want:
            rejected_ok = False
            problems.append(f"{b.label}: rejected rows differ from the planted ones: "
                            f"{len(want - got)} planted not rejected {sorted(want - got)[:3]}, "
                            f"{len(got - want)} rejected not planted {sorted(got - want)[:3]}")
        if a and (a.get("rows") != b.rows or a.get("queued") != len(b.expected) or a.get("skipped")):
            problems.append(f"{b.label}: answer counts rows {a.get('rows')} queued {a.get('queued')} "
                            f"skipped {a.get('skipped')}, expected {b.rows} / {len(b.expected)} / 0")
        if a.get("status") == "queued":
            queued_emails.update(b.expected)
    duplicates = 0
    for b in repeat_of:
        status, answer = b.repeat or (None, None)
        if status == 200 and isinstance(answer, dict) and answer.get("status") == "duplicate":
            duplicates += 1
            if answer.get("first") != b.answer:
                problems.append(f"{b.label}: the repeat's `first` is not the first answer")
        else:
            problems.append(f"{b.label}: the repeat was answered {status} {str(answer)[:200]}")

    # The contacts.
    lost, wrong, dead_lettered_ours = [], [], 0
    for email in sorted(queued_emails):
        contact = contacts.get(email)
        if contact is None:
            if email in dlq_emails:
                dead_lettered_ours += 1
            else:
                lost.append(email)
            continue
        diffs = contact_diffs(expected[email], contact)
        if diffs:
            wrong.append((email, diffs))
    present = sum(1 for b in batches for e in b.expected if e in contacts)
    present_all = sum(1 for e in expected if e in contacts)
    planted = {e.strip().lower() for b in every for e in b.planted.values()}
    unexpected = sorted(e for e in contacts
                        if (e.startswith(ours_prefix) and e not in expected) or e in planted)

    # The imports: ours are those the sandbox did not start with.
    ours = {bid: i for bid, i in sb_imports.items() if bid not in seed_imports}
    by_status = collections.Counter(str(i["status"]) for i in ours.values())
    import_records = [r for r in records if not r["ref"].startswith(ANSWER_PREFIX)]
    record_by_batch = collections.defaultdict(list)
    for r in import_records:
        record_by_batch[r.get("batch_id")].append(r)
    unsettled = [r for r in import_records if r.get("status") == "submitted"]
    status_mismatch = [
        (r["ref"], r.get("batch_id"), r.get("status"), str(ours.get(r.get("batch_id"), {}).get("status")))
        for r in import_records
        if r.get("status") != "submitted" and str(ours.get(r.get("batch_id"), {}).get("status")) != r.get("status")]
    no_import = [r["ref"] for r in import_records if r.get("batch_id") not in ours]

    # How often each contact was written: completed imports the product recorded (their
    # contacts are in the record), completed imports it never learnt of (an answer lost after
    # the importer took the request: only the contacts they created can be named), and
    # contact_syncs (the sandbox logs each one's fields).
    writes = collections.Counter()
    for r in import_records:
        if str(ours.get(r.get("batch_id"), {}).get("status")) == "completed":
            for c in json.loads(r.get("contacts") or "[]"):
                writes[c.get("email")] += 1
    id_to_email = {c["id"]: e for e, c in contacts.items()}
    unrecorded = [i for bid, i in ours.items() if bid not in record_by_batch]
    unrecorded_completed = [i for i in unrecorded if i["status"] == "completed"]
    lost_answer_writes = collections.Counter()
    for i in unrecorded_completed:
        for cid in i.get("success") or []:
            email = id_to_email.get(int(cid)) if str(cid).isdigit() else None
            if email:
                lost_answer_writes[email] += 1
    # contact_syncs answered while the sandbox answered empty bodies: written, but the product
    # could not know it (it retries an unknown outcome, as documented).
    log_syncs, log_syncs_unanswered = log_syncs
    sync_writes, sync_unanswered = collections.Counter(), collections.Counter()
    unknown_syncs = 0
    for first, n in log_syncs.items():
        email = first_name_to_email.get(first)
        if email:
            sync_writes[email] += n
            sync_unanswered[email] += log_syncs_unanswered[first]
        else:
            unknown_syncs += n
    # Writes the product knew of: recorded completed imports, answered contact_syncs.
    known = collections.Counter({e: writes[e] + sync_writes[e] - sync_unanswered[e] for e in expected})
    twice_known = sorted(e for e in expected if known[e] > 1)
    twice_lost_answer = sorted(e for e in expected if known[e] <= 1
                               and known[e] + sync_unanswered[e] + lost_answer_writes[e] > 1)
    total_writes = (sum(int(i["contacts"]) for i in ours.values() if i["status"] == "completed")
                    + sum(sync_writes.values()))
    redundant = total_writes - present_all
    explained = (sum(max(writes[e] + sync_writes[e] - 1, 0) for e in expected)
                 + sum(int(i["contacts"]) for i in unrecorded_completed))
    repeat_twice = sorted(e for b in repeat_of for e in b.expected if e in set(twice_known))
    if redundant != explained:
        problems.append(f"{redundant} redundant contact writes, of which only {explained} are accounted for")

    # Failed and interrupted imports: each of their contacts is sent back through the queue
    # once per such import (by the callback or the reconciler), and must land.
    requeue_expected = collections.Counter()
    failed_contacts, failed_landed = 0, 0
    for r in import_records:
        if str(ours.get(r.get("batch_id"), {}).get("status")) in ("failed", "interrupted"):
            for c in json.loads(r.get("contacts") or "[]"):
                requeue_expected[c.get("email")] += 1
                failed_contacts += 1
                failed_landed += c.get("email") in contacts
    requeued_twice = sorted(e for e, n in sends.requeued.items() if n > requeue_expected[e])
    requeue_extra = sum(max(0, n - requeue_expected[e]) for e, n in sends.requeued.items())
    requeue_missing = sorted(e for e, n in requeue_expected.items() if sends.requeued[e] < n)
    queued_twice = sorted(e for e, n in sends.in_batch_messages.items() if n > 1)
    if queued_twice:
        problems.append(f"{len(queued_twice)} contacts in more than one batch message, e.g. {queued_twice[:3]}")
    twice_by_requeue = sorted(set(twice_known) & set(requeued_twice))
    twice_by_delivery = sorted(set(twice_known) & sends.delivered_twice_emails)
    if sends.delivered_twice:
        problems.append(f"the queue delivered {sends.delivered_twice} messages twice at once "
                        f"({len(sends.delivered_twice_emails)} contacts in them)")

    # The callbacks: lost ones (the sandbox says which) must have been settled anyway.
    lost_callbacks = [bid for bid in log_lost if bid in ours]
    lost_unsettled = [bid for bid in lost_callbacks
                      if any(r.get("status") == "submitted" for r in record_by_batch.get(bid, []))]
    lost_unrecorded = [bid for bid in lost_callbacks if bid not in record_by_batch]

    by_reason = collections.Counter(reason for _, reason in dead_letters)
    dead_letter_contacts = sum(len(emails) or 1 for emails, _ in dead_letters)
    coverage = []
    if by_status["failed"] < 1:
        coverage.append("no import ended failed")
    if by_status["interrupted"] < 1:
        coverage.append("no import ended interrupted")
    if len(lost_callbacks) < 2:
        coverage.append(f"{len(lost_callbacks)} callback(s) lost, fewer than 2")

    if answers_kept != len(every):
        problems.append(f"{answers_kept} batch answers kept in the imports table, expected {len(every)}")
    if watch_counts.get("batches queued", 0) != len(every):
        problems.append(f"the webhook queued {watch_counts.get('batches queued', 0)} batches, "
                        f"expected {len(every)} (a repeat must queue nothing)")
    if not drained:
        problems.append("the drain did not finish in time")
    return {
        "mode": "batch",
        "batches": len(batches),
        "rows": sum(b.rows for b in batches),
        "planted_invalid": sum(len(b.planted) for b in batches),
        "answered_queued": answered_queued,
        "duplicate": duplicates,
        "repeats": len(repeat_of),
        "rows_expected": sum(len(b.expected) for b in batches),
        "rows_in_sandbox": present,
        "pace_rows_in_sandbox": (present_all - present) if pace else None,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "wrong_fields": len(wrong),
        "wrong_field_examples": [{"email": e, "expected_vs_got": d} for e, d in wrong[:10]],
        "unexpected_contacts": len(unexpected),
        "unexpected_examples": unexpected[:10],
        "rejected_equals_planted": rejected_ok,
        "imports": len(ours),
        "imports_by_status": dict(by_status),
        "imports_unrecorded": len(unrecorded),
        "imports_unrecorded_completed_contacts": sum(int(i["contacts"]) for i in unrecorded_completed),
        "records": len(import_records),
        "records_by_status": dict(collections.Counter(r.get("status") for r in import_records)),
        "records_unsettled": len(unsettled),
        "records_unsettled_examples": [{"ref": r["ref"], "batch_id": r.get("batch_id"),
                                        "sandbox_status": str(ours.get(r.get("batch_id"), {}).get("status")),
                                        "submitted_at": r.get("submitted_at")} for r in unsettled[:10]],
        "records_status_mismatch": status_mismatch[:10],
        "records_status_mismatches": len(status_mismatch),
        "records_without_import": no_import[:10],
        "callbacks_lost": len(lost_callbacks),
        "callbacks_lost_unsettled": len(lost_unsettled),
        "callbacks_lost_unrecorded": len(lost_unrecorded),
        "callbacks_sent": sum(1 for bid in log_ended if bid in ours),
        "reconciler": dict(reconciler.totals),
        "contact_syncs": sum(sync_writes.values()),
        "contact_syncs_answered_empty": sum(sync_unanswered.values()),
        "contact_syncs_unattributed": unknown_syncs,
        "contact_writes": total_writes,
        "redundant_writes": redundant,
        "redundant_writes_explained": explained,
        "imported_twice": len(twice_known),
        "imported_twice_examples": [{"email": e, "recorded_imports": writes[e], "contact_syncs": sync_writes[e],
                                     "contact_syncs_answered_empty": sync_unanswered[e],
                                     "requeued": sends.requeued[e]}
                                    for e in twice_known[:10]],
        "imported_twice_after_lost_answer": len(twice_lost_answer),
        "repeat_imported_twice": len(repeat_twice),
        "imported_twice_requeued_twice": len(twice_by_requeue),
        "imported_twice_delivered_twice": len(twice_by_delivery),
        "queue_delivered_twice": sends.delivered_twice,
        "failed_import_contacts": failed_contacts,
        "failed_import_contacts_landed": failed_landed,
        "requeued_messages": sum(sends.requeued.values()),
        "requeued_expected": sum(requeue_expected.values()),
        "requeued_twice": len(requeued_twice),
        "requeued_extra_messages": requeue_extra,
        "requeued_twice_examples": [{"email": e, "requeued": sends.requeued[e], "expected": requeue_expected[e],
                                     "recorded_imports": writes[e], "contact_syncs": sync_writes[e]}
                                    for e in requeued_twice[:10]],
        "requeue_missing": len(requeue_missing),
        "single_messages_generation_0": sum(sends.other.values()),
        "dead_lettered": len(dead_letters),
        "dead_lettered_contacts": dead_letter_contacts,
        "dead_lettered_ours": dead_lettered_ours,
        "dead_lettered_by_reason": dict(by_reason),
        "coverage_missing": coverage,
        "import_fault_steps_used": (f"{len(import_faults.used)} of {len(import_faults.all_steps())}"
                                    if import_faults is not None else None),
        "problems": problems,
        "watch_log": watch_counts,
        "answers_kept": answers_kept,
    }


def batch_summary_line(r):
    s = r["imports_by_status"]
    twice = f"imported twice {r['imported_twice']}"
    causes = []
    if r["imported_twice_requeued_twice"]:
        causes.append(f"{r['imported_twice_requeued_twice']} sent back twice after a failed import")
    if r["imported_twice_delivered_twice"]:
        causes.append(f"{r['imported_twice_delivered_twice']} in a message the queue delivered twice")
    if r["imported_twice_after_lost_answer"]:
        causes.append(f"+{r['imported_twice_after_lost_answer']} more after a lost import answer")
    if causes:
        twice += f" ({'; '.join(causes)})"
    sent_back_twice = f", {r['requeued_twice']} sent back twice" if r["requeued_twice"] else ""
    reasons = ", ".join(f"{n} {reason!r}" for reason, n in r["dead_lettered_by_reason"].items())
    line = (f"loss audit (batch): batches {r['batches']} ({r['rows']:,} rows, {r['planted_invalid']} planted "
            f"invalid), answered queued {r['answered_queued']}, duplicate {r['duplicate']}, rows in the sandbox "
            f"{r['rows_in_sandbox']:,}, lost {r['lost']}, wrong fields {r['wrong_fields']}, rejected = planted: "
            f"{'yes' if r['rejected_equals_planted'] else 'NO'}, imports {r['imports']} (failed "
            f"{s.get('failed', 0)}, interrupted {s.get('interrupted', 0)} re-queued: "
            f"{r['failed_import_contacts_landed']:,}/{r['failed_import_contacts']:,} of their contacts landed"
            f"{sent_back_twice}), callbacks lost "
            f"{r['callbacks_lost']} ({r['callbacks_lost'] - r['callbacks_lost_unsettled']} settled by the "
            f"reconciler, which settled {r['reconciler'].get('settled', 0)} in all), records unsettled "
            f"{r['records_unsettled']}, {twice}, dead-lettered {r['dead_lettered']}"
            f"{f' ({reasons})' if reasons else ''}")
    if r["unexpected_contacts"]:
        line += f", unexpected contacts {r['unexpected_contacts']}"
    if r.get("pace"):
        p = r["pace"]
        line += (f", pace: {p['rows']:,}-row batch POST to last contact "
                 f"{p['seconds']:.0f} s" if p.get("seconds") is not None else ", pace: did not finish")
    return line


def batch_failed(r, strict_repeats):
    return bool(r["lost"] or r["wrong_fields"] or not r["rejected_equals_planted"] or r["unexpected_contacts"]
                or r["answered_queued"] != r["batches"] or r["duplicate"] != r["repeats"]
                or r["records_unsettled"] or r["records_status_mismatches"] or r["imported_twice"]
                or (strict_repeats and r["imported_twice_after_lost_answer"])
                or r["dead_lettered"] or r["callbacks_lost_unsettled"] or r["coverage_missing"] or r["problems"])


def batch_main(args):
    count_rows = args.rows or (2000 if args.quick else 20000)
    invalid = args.invalid if args.invalid is not None else 37
    n_batches = args.batches
    SKIPPED.update(args.skip)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    concurrency = args.concurrency or 2
    drain_timeout = args.drain_timeout or (480 if args.quick else 1200)
    max_receive = args.max_receive_count or 10
    visibility = args.visibility_timeout or 360

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    begun = time.time()
    tmp = tempfile.mkdtemp(prefix="acws-loss-audit-")
    run_id = f"{int(begun) % 100000:05d}{rng.randrange(100):02d}"
    stop_event = threading.Event()
    halt_faults = threading.Event()
    sandbox = watch = moto = chaos = None
    failed, exit_code = False, None
    try:
        sandbox_port, watch_port, moto_port = free_port(), free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        with open(os.path.join(ROOT, "local", "secret.json")) as f:
            secret = json.load(f)
        secret["api_url"] = sandbox_url
        secret_path = os.path.join(tmp, "secret.json")
        with open(secret_path, "w") as f:
            json.dump(secret, f)
        sandbox_env = dict(os.environ, AC_SANDBOX_RATE_LIMIT="5")
        for name in ("AC_SANDBOX_FAULT", "AC_SANDBOX_SEED", "AC_SANDBOX_API_KEY", "AC_SANDBOX_BAD_KEY_STATUS"):
            sandbox_env.pop(name, None)
        binary = os.path.join(ROOT, "target", "debug", "ac-sandbox")
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} is missing: run `cargo build --bins` (scripts/loss_audit.sh does)")
        sandbox_log = os.path.join(tmp, "sandbox.log")
        sandbox = start([binary, str(sandbox_port)], sandbox_log, sandbox_env, append=True)
        wait_http(f"{sandbox_url}/sandbox/state", 30, sandbox, "ac-sandbox")
        seed_imports = set(sandbox_imports(sandbox_url))

        moto_bin = shutil.which("moto_server") or os.path.join(ROOT, ".venv", "bin", "moto_server")
        moto = start([moto_bin, "-H", "127.0.0.1", "-p", str(moto_port)], os.path.join(tmp, "moto.log"))
        endpoint = f"http://127.0.0.1:{moto_port}"
        wait_tcp(moto_port, 30, moto, "moto_server")
        queues = Queues(endpoint, visibility, max_receive)
        table = Imports(endpoint)
        callback_url = f"http://127.0.0.1:{watch_port}/lambda-url/import-callback/"
        function_env = {
            "SECRET_FILE": secret_path, "AWS_REGION": REGION, "RUST_LOG": "info", "DELIVERY": "queue",
            "QUEUE_URL": queues.url, "DLQ_URL": queues.dlq_url, "IMPORTS_TABLE": IMPORTS_TABLE_NAME,
            "CALLBACK_URL": callback_url, "MAX_RECEIVE_COUNT": str(max_receive),
            "RECONCILE_MIN_AGE_SECS": str(args.reconcile_min_age),
            "WORKER_RETRY_BASE_SECS": str(args.retry_base), "WORKER_RETRY_MAX_SECS": str(args.retry_max),
            # As template.yaml: the worker's budget within its 60 s timeout, and 5 requests/s
            # shared by its instances.
            "INVOCATION_BUDGET_MS": "55000", "AC_REQUESTS_PER_SECOND": str(5 / concurrency),
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        }
        env = dict(os.environ, **function_env)
        for name in ("SECRET_ID", "MAPPING_FILE"):
            env.pop(name, None)
        cmd = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(watch_port),
               "--ignore-changes", "--concurrency", str(concurrency)]
        for k, v in function_env.items():
            cmd += ["--env-var", f"{k}={v}"]
        watch_log = os.path.join(tmp, "watch.log")
        watch = start(cmd, watch_log, env)
        front = f"http://127.0.0.1:{watch_port}/lambda-url/webhook"
        wait_http(f"{front}/health", 300, watch, "cargo lambda watch")
        wait_http(f"{callback_url}health", 300, watch, "the import-callback function")
        functions = f"http://127.0.0.1:{watch_port}/2015-03-31/functions"
        invoke_url = f"{functions}/sync-worker/invocations"
        status, _, raw = http("POST", invoke_url, b'{"Records":[]}', {"content-type": "application/json"}, timeout=300)
        if status != 200:
            raise RuntimeError(f"the sync-worker did not start: {status} {raw[:300]!r}")
        reconciler = Reconciler(f"{functions}/import-reconciler/invocations", args.reconcile_every, stop_event)
        if reconciler.invoke() is None:
            raise RuntimeError("the import-reconciler did not start; see watch.log")
        esm = EventSourceMapping(queues, invoke_url, concurrency, args.batch_window, stop_event)
        sends = Sends()
        esm.observe, esm.release, esm.receive_lock = sends, sends.release, threading.Lock()

        pace = None
        if not args.no_pace:
            pace = Batch(0, "pace batch", run_id, count_rows, 0, rng)
        batches = [Batch(k, f"batch {k}", run_id, count_rows, invalid, rng) for k in range(1, n_batches + 1)]
        repeat_of = [batches[0]] if batches else []
        log(f"loss audit (batch): {n_batches} batches of {count_rows:,} CSV rows ({invalid} planted invalid each)"
            f"{' after a pace batch' if pace else ''}, seed {seed}, {concurrency} instance(s) per function, "
            f"reconciler every {args.reconcile_every:.0f}s (min age {args.reconcile_min_age}s); logs in {tmp}")
        esm.start()
        reconciler.thread.start()

        def progress(phase, started):
            imports = sandbox_imports(sandbox_url)
            statuses = collections.Counter(str(i["status"]) for b, i in imports.items() if b not in seed_imports)
            tags = sandbox_tags(sandbox_url)
            visible, hidden = queues.depth()
            log(f"{phase} {time.time() - started:4.0f}s: {tags.get('import', 0):,} imported contacts in the sandbox, "
                f"imports {dict(statuses)}, queue {visible} visible + {hidden} in flight, "
                f"fault: {chaos.current if chaos else None}, worker {dict(esm.stats)}")

        # 1. The importer's pace: one clean batch, from its POST to its last contact present.
        if pace is not None:
            pace.posted_at = time.time()
            pace.status, pace.answer = post_batch(front, pace, args.max_attempts, stop_event)
            pace.answered_at = time.time()
            log(f"pace batch answered {pace.status} in {pace.answered_at - pace.posted_at:.1f}s: "
                f"{json.dumps({k: v for k, v in (pace.answer or {}).items() if k != 'rejected'})[:300]}")
            end, last = time.time() + max(600, count_rows / 250 * 3), 0
            while time.time() < end:
                tags = sandbox_tags(sandbox_url)
                if tags.get("import", 0) >= len(pace.expected):
                    got = sandbox_contacts(sandbox_url)
                    if all(e in got for e in pace.expected):
                        pace.complete_at = time.time()
                        break
                if time.time() - last >= 10:
                    progress("pace", pace.posted_at)
                    last = time.time()
                time.sleep(0.5)
            if pace.complete_at:
                log(f"pace: {count_rows:,}-row batch from POST to its last contact in "
                    f"{pace.complete_at - pace.posted_at:.1f}s")
            else:
                log("pace: the batch did not complete in time")

        # 2. The batches under faults, a poster's repeat, and the importer's own outcomes.
        schedule = [] if args.no_faults else fault_schedule(args.quick, rng)
        length = schedule_length(schedule, args.quick) if schedule else 30
        chaos = MarkedChaos(sandbox_log, sandbox_url, schedule, args.quick, rng, keep_going=lambda: False)
        chaos.halt = halt_faults
        faults = None if args.no_import_faults else ImportFaults(
            sandbox_url, import_fault_steps(rng), rng, 0.6 * length, stop_event)
        if faults is not None:
            chaos.before_set = faults.fault_switching_on
        started = time.time()
        if schedule:
            chaos.thread.start()

        def poster(batch, at):
            if stop_event.wait(max(0, started + at - time.time())):
                return
            batch.posted_at = time.time()
            log(f"{batch.label}: POST {len(batch.body):,} bytes")
            batch.status, batch.answer = post_batch(front, batch, args.max_attempts, stop_event)
            batch.answered_at = time.time()
            a = batch.answer if isinstance(batch.answer, dict) else {}
            log(f"{batch.label}: answered {batch.status} {a.get('status')} in {batch.answered_at - batch.posted_at:.1f}s "
                f"(rows {a.get('rows')}, queued {a.get('queued')}, "
                f"rejected {len(a.get('rejected') or [])})")
            if batch is batches[0] and faults is not None:
                faults.thread.start()
            if batch in repeat_of:
                if stop_event.wait(rng.uniform(3, 10)):
                    return
                attempts = []
                status, answer = post_batch(front, batch, args.max_attempts, stop_event, attempts=attempts)
                batch.repeat = (status, answer)
                log(f"{batch.label}: the poster's repeat answered {status} "
                    f"{(answer or {}).get('status') if isinstance(answer, dict) else answer}")

        posters = [threading.Thread(target=poster, args=(b, n * length / max(n_batches, 1) * 0.7),
                                    daemon=True, name=f"poster-{b.index}") for n, b in enumerate(batches)]
        for t in posters:
            t.start()

        def completion_check(final=False):
            got = sandbox_contacts(sandbox_url)
            for b in batches:
                if b.complete_at is None and b.answered_at and all(e in got for e in b.expected):
                    b.complete_at = time.time()
            return got

        last = last_check = 0
        while any(t.is_alive() for t in posters) or (schedule and chaos.thread.is_alive()):
            time.sleep(1)
            if time.time() - last >= 15:
                progress("faults", started)
                last = time.time()
            if time.time() - last_check >= 10:
                completion_check()
                last_check = time.time()
        halt_faults.set()
        if schedule:
            chaos.thread.join(timeout=120)
        chaos.clear()
        faults_off = time.time()
        log(f"batches answered and faults cleared after {faults_off - started:.0f}s; draining "
            f"(at most {drain_timeout:.0f}s)")

        # 3. Drain: the queue empty, every import ended, every record settled (the reconciler
        # runs meanwhile), twice in a row, with a reconciler run between.
        drain_end = time.time() + drain_timeout
        quiet_since, drained = None, False
        while time.time() < drain_end:
            imports = sandbox_imports(sandbox_url)
            busy = any(str(i["status"]) not in ("completed", "failed", "interrupted")
                       for b, i in imports.items() if b not in seed_imports)
            visible, hidden = queues.depth()
            open_records = table.open_count()
            # An import fault still pending once nothing is imported any more is never used:
            # it does not hold the drain (the verdict says what was exercised).
            faults_pending = faults is not None and faults.thread.is_alive()
            if busy or visible + hidden or open_records:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.time()
            elif time.time() - quiet_since > args.reconcile_every + 5:
                drained = True
                break
            if time.time() - last >= 15:
                progress("draining", started)
                log(f"  open import records {open_records}, import faults pending: {faults_pending}")
                last = time.time()
            if time.time() - last_check >= 10:
                completion_check()
                last_check = time.time()
            time.sleep(5)
        else:
            log(f"drain did not finish within {drain_timeout:.0f}s")
        drained_at = time.time()
        stop_event.set()
        for t in esm.threads:
            t.join(timeout=200)
        reconciler.thread.join(timeout=130)
        http("DELETE", f"{sandbox_url}/sandbox/import-faults")

        contacts = completion_check(final=True)
        dead_letters = read_dlq_batch(queues)
        records = table.scan()
        with open(os.path.join(tmp, "state.json"), "w") as f:
            json.dump({"contacts": contacts, "imports": sandbox_imports(sandbox_url), "seed_imports": sorted(seed_imports),
                       "records": records, "dead_letters": dead_letters,
                       "requeued": sends.requeued, "in_batch_messages": sends.in_batch_messages,
                       "batches": [{"label": b.label, "planted": b.planted, "answer": b.answer, "repeat": b.repeat,
                                    "attempts": b.attempts} for b in ([pace] if pace else []) + batches]},
                      f, default=str)
        answers_kept = sum(1 for r in records if r["ref"].startswith(ANSWER_PREFIX))
        syncs, ended, lost_callbacks, callback_errors = sandbox_log_events(sandbox_log)
        result = batch_verdict(batches, pace, repeat_of, contacts, sandbox_imports(sandbox_url), seed_imports,
                               records, answers_kept, dead_letters, syncs, ended, lost_callbacks, reconciler,
                               faults, watch_log_counts(watch_log), run_id, drained, sends)
        result.update({
            "seed": seed,
            "rows_per_batch": count_rows,
            "pace": ({"rows": pace.rows, "answered_s": round(pace.answered_at - pace.posted_at, 1),
                      "seconds": round(pace.complete_at - pace.posted_at, 1) if pace.complete_at else None}
                     if pace else None),
            "batch_times": [{"batch": b.label, "answer_s": round(b.answered_at - b.posted_at, 1) if b.answered_at else None,
                             "post_to_last_contact_s": round(b.complete_at - b.posted_at, 1) if b.complete_at else None,
                             "attempts": [[a[0], a[1], a[3]] for a in b.attempts]} for b in batches],
            "faults": [{"at_s": at, "fault": label, "held_s": held} for at, label, held in chaos.timeline],
            "import_faults": [{"at_s": at, "step": step, "when": why} for at, step, why in faults.applied] if faults else [],
            "callback_errors": callback_errors,
            "reconciler_runs": len(reconciler.runs),
            "worker": dict(esm.stats),
            "faults_s": round(faults_off - started, 1),
            "drain_s": round(drained_at - faults_off, 1),
            "total_s": round(time.time() - begun, 1),
            "logs": tmp if args.keep_logs else None,
        })
        for p in result["problems"]:
            log(f"problem: {p}")
        for c in result["coverage_missing"]:
            log(f"not exercised: {c}")
        for example in result["lost_examples"][:3]:
            log(f"lost: {example}")
        for example in result["wrong_field_examples"][:3]:
            log(f"wrong fields: {example}")
        for example in result["records_unsettled_examples"][:3]:
            log(f"unsettled record: {example}")
        for example in result["imported_twice_examples"][:3]:
            log(f"imported twice: {example}")
        log("faults: " + "; ".join(f"{f['at_s']:.0f}s {f['fault']} ({f['held_s']:.0f}s)" for f in result["faults"]))
        log("import faults: " + "; ".join(f"{f['at_s']:.0f}s {json.dumps(f['step'])} ({f['when']})"
                                          for f in result["import_faults"]))
        for b in result["batch_times"]:
            log(f"{b['batch']}: answered in {b['answer_s']}s, POST to last contact {b['post_to_last_contact_s']}s")
        log(f"imports {result['imports_by_status']}, records {result['records_by_status']}, reconciler "
            f"{result['reconciler']}, contact writes {result['contact_writes']} "
            f"(redundant {result['redundant_writes']}, explained {result['redundant_writes_explained']}), "
            f"contact_syncs {result['contact_syncs']} ({result['contact_syncs_answered_empty']} answered empty), "
            f"unrecorded imports {result['imports_unrecorded']}, worker {result['worker']}, watch.log {result['watch_log']}")
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        else:
            print(batch_summary_line(result) + f", {result['total_s']:.0f} s")
        failed = batch_failed(result, args.strict_repeats)
        if failed:
            args.keep_logs = True
            log(f"logs kept in {tmp}")
    except RuntimeError as e:
        failed = True
        args.keep_logs = True
        log(f"loss audit failed: {e}; logs in {tmp}")
    except (KeyboardInterrupt, SystemExit) as e:
        failed = True
        log("interrupted; stopping what was started")
        exit_code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 130
    except BaseException:
        args.keep_logs = True
        log(f"loss audit failed; logs in {tmp}")
        raise
    finally:
        stop_event.set()
        halt_faults.set()
        stop(watch)
        stop(moto)
        stop(sandbox)
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(exit_code if exit_code is not None else 1 if failed else 0)


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["inline", "queue", "batch"], default="queue")
    parser.add_argument("--count", type=int, default=None, help="webhooks to send (default 2000; --quick 200)")
    parser.add_argument("--quick", action="store_true", help="200 webhooks and shorter faults")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the fault schedule")
    parser.add_argument("--senders", type=int, default=4, help="concurrent sender threads (default 4)")
    parser.add_argument("--max-attempts", type=int, default=6, help="deliveries per webhook, retries included (default 6)")
    parser.add_argument("--rate", type=float, default=None,
                        help="first deliveries per second (default: inline unpaced; queue: spread over the faults)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="instances per function in cargo lambda watch, and SQS pollers (default: inline 1; "
                             "queue 2, the template's WorkerMaxConcurrency, at AC_REQUESTS_PER_SECOND=2.5)")
    parser.add_argument("--visibility-timeout", type=int, default=None,
                        help="queue visibility timeout, s (default 30; batch: 360, as template.yaml)")
    parser.add_argument("--max-receive-count", type=int, default=None,
                        help="the worker's MAX_RECEIVE_COUNT (default 5; batch: 10, as template.yaml)")
    parser.add_argument("--batch-window", type=float, default=5, help="SQS batching window, s (default 5)")
    parser.add_argument("--drain-timeout", type=float, default=None, help="longest wait for retries and the queue, s")
    parser.add_argument("--no-faults", action="store_true", help="a baseline run without faults")
    parser.add_argument("--skip", action="append", default=[], choices=FAULT_KINDS, metavar="KIND",
                        help=f"leave a fault kind out ({', '.join(FAULT_KINDS)}); repeatable")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary directory with the logs")
    batch = parser.add_argument_group("batch mode")
    batch.add_argument("--batches", type=int, default=3, help="batches posted under faults (default 3)")
    batch.add_argument("--rows", type=int, default=None, help="CSV rows per batch (default 20000; --quick 2000)")
    batch.add_argument("--invalid", type=int, default=None, help="invalid emails planted per batch (default 37)")
    batch.add_argument("--no-pace", action="store_true",
                       help="leave out the clean batch timed at the importer's pace before the faults")
    batch.add_argument("--no-import-faults", action="store_true",
                       help="no failed or interrupted imports, no lost callbacks")
    batch.add_argument("--reconcile-every", type=float, default=15, help="import-reconciler period, s (default 15)")
    batch.add_argument("--reconcile-min-age", type=int, default=20, help="RECONCILE_MIN_AGE_SECS (default 20)")
    batch.add_argument("--retry-base", type=int, default=2, help="WORKER_RETRY_BASE_SECS (default 2)")
    batch.add_argument("--retry-max", type=int, default=30, help="WORKER_RETRY_MAX_SECS (default 30)")
    batch.add_argument("--strict-repeats", action="store_true",
                       help="also fail on contacts imported twice because an import's answer was lost "
                            "(README: 'A bulk import whose answer was lost')")
    args = parser.parse_args()
    if args.mode == "batch":
        return batch_main(args)
    if args.visibility_timeout is None:
        args.visibility_timeout = 30
    if args.max_receive_count is None:
        args.max_receive_count = 5
    count = args.count or (200 if args.quick else 2000)
    SKIPPED.update(args.skip)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    concurrency = args.concurrency or (2 if args.mode == "queue" else 1)
    drain_timeout = args.drain_timeout or (240 if args.quick else 480)

    # Ctrl-C and SIGTERM stop what was started (the finally below), even when started in the
    # background, where SIGINT would be ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    begun = time.time()
    tmp = tempfile.mkdtemp(prefix="acws-loss-audit-")
    run_id = f"{int(begun) % 100000:05d}{rng.randrange(100):02d}"
    stop_event = threading.Event()
    sandbox = watch = moto = chaos = None
    failed = False
    exit_code = None
    try:
        sandbox_port, watch_port = free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        with open(os.path.join(ROOT, "local", "secret.json")) as f:
            secret = json.load(f)
        secret["api_url"] = sandbox_url
        secret_path = os.path.join(tmp, "secret.json")
        with open(secret_path, "w") as f:
            json.dump(secret, f)

        sandbox_env = dict(os.environ, AC_SANDBOX_RATE_LIMIT="5")
        for name in ("AC_SANDBOX_FAULT", "AC_SANDBOX_SEED", "AC_SANDBOX_API_KEY", "AC_SANDBOX_BAD_KEY_STATUS"):
            sandbox_env.pop(name, None)
        binary = os.path.join(ROOT, "target", "debug", "ac-sandbox")
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} is missing: run `cargo build --bins` (scripts/loss_audit.sh does)")
        sandbox = start([binary, str(sandbox_port)], os.path.join(tmp, "sandbox.log"), sandbox_env)
        wait_http(f"{sandbox_url}/sandbox/state", 30, sandbox, "ac-sandbox")

        function_env = {"SECRET_FILE": secret_path, "AWS_REGION": REGION, "RUST_LOG": "info", "DELIVERY": args.mode}
        queues = None
        if args.mode == "queue":
            moto_port = free_port()
            moto_bin = shutil.which("moto_server") or os.path.join(ROOT, ".venv", "bin", "moto_server")
            moto = start([moto_bin, "-H", "127.0.0.1", "-p", str(moto_port)], os.path.join(tmp, "moto.log"))
            endpoint = f"http://127.0.0.1:{moto_port}"
            wait_tcp(moto_port, 30, moto, "moto_server")
            queues = Queues(endpoint, args.visibility_timeout, args.max_receive_count)
            function_env.update({
                "QUEUE_URL": queues.url, "DLQ_URL": queues.dlq_url,
                "MAX_RECEIVE_COUNT": str(args.max_receive_count),
                "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                # Shared by the worker instances, as template.yaml sets it.
                "AC_REQUESTS_PER_SECOND": str(5 / concurrency),
            })
        # cargo lambda watch hands its own environment to the functions it runs (cargo run);
        # --env-var says the same explicitly.
        env = dict(os.environ, **function_env)
        for name in ("SECRET_ID", "QUEUE_URL", "DLQ_URL", "CALLBACK_URL", "IMPORTS_TABLE", "MAPPING_FILE"):
            if name not in function_env:
                env.pop(name, None)
        cmd = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(watch_port),
               "--ignore-changes", "--concurrency", str(concurrency)]
        for k, v in function_env.items():
            cmd += ["--env-var", f"{k}={v}"]
        watch = start(cmd, os.path.join(tmp, "watch.log"), env)
        front = f"http://127.0.0.1:{watch_port}/lambda-url/webhook"
        wait_http(f"{front}/health", 300, watch, "cargo lambda watch")
        invoke_url = f"http://127.0.0.1:{watch_port}/2015-03-31/functions/sync-worker/invocations"
        esm = None
        if queues is not None:
            # Start the sync-worker before the clock runs.
            status, _, raw = http("POST", invoke_url, b'{"Records":[]}', {"content-type": "application/json"}, timeout=300)
            if status != 200:
                raise RuntimeError(f"the sync-worker did not start: {status} {raw[:300]!r}")
            esm = EventSourceMapping(queues, invoke_url, concurrency, args.batch_window, stop_event)

        hooks = [Hook(n, SENDERS[n % len(SENDERS)], run_id) for n in range(count)]
        schedule = [] if args.no_faults else fault_schedule(args.quick, rng)
        # First deliveries are spread over the fault schedule, so the faults meet traffic (inline,
        # the function's 5 requests/s usually holds them back more than this).
        rate = args.rate
        if rate is None and schedule:
            rate = count / (0.8 * schedule_length(schedule, args.quick))
        senders = Senders(front, hooks, args.senders, args.max_attempts, rate, stop_event, timeout_s=180)
        log(f"loss audit ({args.mode}): {count} webhooks from {args.senders} sender threads "
            f"({', '.join(SENDERS)}), {'unpaced' if not rate else f'{rate:.1f}/s'}, seed {seed}, "
            f"{concurrency} instance(s) per function; logs in {tmp}")
        chaos = Chaos(sandbox_url, schedule, args.quick, rng,
                      keep_going=lambda: args.mode == "inline" and not senders.done())
        sending_started = time.time()
        if esm:
            esm.start()
        senders.start()
        if schedule:
            chaos.thread.start()

        def progress(phase):
            state = get_json(f"{sandbox_url}/sandbox/state")
            ours = sum(1 for c in state["contacts"] if c["email"].startswith(f"audit-{run_id}-"))
            queue = ""
            if queues:
                visible, hidden = queues.depth()
                queue = f", queue {visible} visible + {hidden} in flight, worker {dict(esm.stats)}"
            with senders.lock:
                answered = count - senders.pending
                waiting = senders.retries_waiting
            log(f"{phase} {time.time() - sending_started:4.0f}s: answered {answered}/{count}, "
                f"{waiting} sender retries waiting, {ours} contacts in the sandbox, "
                f"fault: {chaos.current or 'none'}, 429s {state['rate_limited_requests']}{queue}")

        last = 0
        # Inline, the faults stop when every webhook has its answer; queued, they go on to the
        # end of the schedule (the worker is still draining).
        while not senders.done() or (args.mode == "queue" and schedule and chaos.thread.is_alive()):
            time.sleep(1)
            if time.time() - last >= 10:
                progress("sending")
                last = time.time()
        stop_chaos = time.time()
        chaos.halt.set()
        if schedule:
            chaos.thread.join(timeout=120)
        chaos.clear()
        log(f"sending done in {stop_chaos - sending_started:.0f}s; faults cleared; draining")

        drain_end = time.time() + drain_timeout
        while time.time() < drain_end:
            imports = get_json(f"{sandbox_url}/sandbox/imports")["imports"]
            busy = any(i["status"] != "completed" for i in imports)
            if queues:
                visible, hidden = queues.depth()
                busy = busy or visible + hidden > 0
            if not busy:
                break
            if time.time() - last >= 10:
                progress("draining")
                last = time.time()
            time.sleep(1)
        else:
            log(f"drain did not finish within {drain_timeout:.0f}s")
        drained = time.time()
        stop_event.set()
        if esm:
            for t in esm.threads:
                t.join(timeout=200)
        dead_letters = queues.read_dlq() if queues else []
        if queues:
            visible, hidden = queues.depth()
            if visible + hidden:
                log(f"still in the queue after the drain: {visible} visible, {hidden} in flight")
        state = get_json(f"{sandbox_url}/sandbox/state")
        contacts = {c["email"]: c for c in state["contacts"]}
        for hook in hooks:
            if hook.final is None:   # stopped before its last attempt
                hook.final = hook.attempts[-1] if hook.attempts else (None, None, "never sent", None)
        result = verdict(args.mode, hooks, contacts, dead_letters)
        result.update({
            "seed": seed,
            "faults": [{"at_s": at, "fault": label, "held_s": held} for at, label, held in chaos.timeline],
            "sandbox_429s": state["rate_limited_requests"],
            "worker": dict(esm.stats) if esm else None,
            "worker_rejected_by_reason": worker_rejections(os.path.join(tmp, "watch.log")) if esm else None,
            "sending_s": round(stop_chaos - sending_started, 1),
            "drain_s": round(drained - stop_chaos, 1),
            "total_s": round(time.time() - begun, 1),
            "logs": tmp if args.keep_logs else None,
        })
        for example in result["lost_examples"][:3]:
            log(f"lost: {example}")
        for example in result["wrong_field_examples"][:3]:
            log(f"wrong fields: {example}")
        log(f"faults: " + "; ".join(f"{f['at_s']:.0f}s {f['fault']} ({f['held_s']:.0f}s)" for f in result["faults"]))
        log(f"run took {result['total_s']:.0f}s (sending {result['sending_s']:.0f}s, drain {result['drain_s']:.0f}s)")
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(summary_line(result) + f", {result['total_s']:.0f}s")
        failed = result["lost"] > 0 or result["wrong_fields"] > 0
    except RuntimeError as e:
        failed = True
        args.keep_logs = True
        log(f"loss audit failed: {e}; logs in {tmp}")
    except (KeyboardInterrupt, SystemExit) as e:
        failed = True
        log("interrupted; stopping what was started")
        exit_code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 130
    except BaseException:
        args.keep_logs = True
        log(f"loss audit failed; logs in {tmp}")
        raise
    finally:
        stop_event.set()
        if chaos is not None:
            chaos.halt.set()
        stop(watch)
        stop(moto)
        stop(sandbox)
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(exit_code if exit_code is not None else 1 if failed else 0)


if __name__ == "__main__":
    main()
