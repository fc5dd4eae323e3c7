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

Then it clears the faults, lets retries and the queue drain (bounded), compares the sandbox's
contacts with what was sent and prints one summary line (or --json). It exits non-zero on any
loss or wrong field, and stops everything it started, on errors and Ctrl-C too.

    scripts/loss_audit.sh --mode queue            # 2000 webhooks, a few minutes
    scripts/loss_audit.sh --mode inline --quick   # 200 webhooks (2000 inline take 7+ min:
                                                  # ActiveCampaign's 5 requests/s)
"""
import argparse
import base64
import collections
import heapq
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


def start(cmd, log_path, env=None):
    out = open(log_path, "w")
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
            sqs.delete_message_batch(QueueUrl=self.queues.url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)])
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

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["inline", "queue"], default="queue")
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
    parser.add_argument("--visibility-timeout", type=int, default=30, help="queue visibility timeout, s (default 30)")
    parser.add_argument("--max-receive-count", type=int, default=5, help="the worker's MAX_RECEIVE_COUNT (default 5)")
    parser.add_argument("--batch-window", type=float, default=5, help="SQS batching window, s (default 5)")
    parser.add_argument("--drain-timeout", type=float, default=None, help="longest wait for retries and the queue, s")
    parser.add_argument("--no-faults", action="store_true", help="a baseline run without faults")
    parser.add_argument("--skip", action="append", default=[], choices=FAULT_KINDS, metavar="KIND",
                        help=f"leave a fault kind out ({', '.join(FAULT_KINDS)}); repeatable")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary directory with the logs")
    args = parser.parse_args()
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
