#!/usr/bin/env python3
"""Cold-start and warm-invocation benchmark for a Lambda binary, under a minimal local
Lambda Runtime API emulator (standard library only).

For each of R cold starts it spawns the binary with AWS_LAMBDA_RUNTIME_API pointing at the
emulator, feeds it 1 + N copies of one event, and records:

  init            spawn -> first GET /2018-06-01/runtime/invocation/next
  first response  spawn -> first POST .../invocation/{id}/response
  warm            per invocation: `next` served -> response received (the N later ones)
  peak RSS        VmHWM from /proc/<pid>/status, read just before the child is killed

Medians over the R cold starts are printed; warm median/p90 pool every warm invocation.
This is not Lambda's CPU (a 128 MB function gets a fraction of a vCPU): compare binaries
measured in the same run, not these numbers with CloudWatch's Init Duration.

    scripts/coldstart.py --event events/health.json
    scripts/coldstart.py --event events/form-json.json --with-sandbox
    scripts/coldstart.py --event events/health.json --baseline path/to/hello-bootstrap --json out.json

With --baseline (e.g. target/release/examples/hello_lambda) both binaries are measured in the
same run, alternating, and the table adds their ratios. With --secrets-manager the secret is
served by a fake Secrets Manager (SECRET_ID, as deployed) that counts GetSecretValue calls per
container; with --fake-ac ActiveCampaign is a loopback fake that counts requests and TCP
connections per container and times each call, so the warm time is also shown without the
time spent inside ActiveCampaign's answer.

Back-to-back invocations that reach ActiveCampaign are held to the client's pacer (5 calls/s
unless AC_REQUESTS_PER_SECOND says otherwise), so their warm time is ~200 ms by design; pass
--env AC_REQUESTS_PER_SECOND=1000 or --gap 250 to see the time of the work itself.
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import queue
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "/2018-06-01/runtime"
FUNCTION_NAME = "webhook"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
SECRET_ID = "ac-webhook-sync-coldstart"


def now():
    return time.perf_counter()


# ---------------------------------------------------------------------------------------------
# Runtime API emulator


def nth_delivery(event_body, n):
    """The event as the n-th of many distinct deliveries of its kind, so that each is synced
    rather than answered as a duplicate of the first: a Shopify event gets its own event id (not
    signed), an unsigned form or JSON post its own bytes. Events without a body stay as they are."""
    if n == 0:
        return event_body
    event = json.loads(event_body)
    if "Records" in event:  # an SQS batch for the sync-worker: new messages, new people
        for record in event["Records"]:
            record["messageId"] = f"{record['messageId']}-{n}"
            message = json.loads(record["body"])
            message["contact"]["email"] = message["contact"]["email"].replace("@", f"+{n}@", 1)
            record["body"] = json.dumps(message)
        return json.dumps(event).encode()
    headers = event.get("headers") or {}
    if "x-shopify-event-id" in headers:
        headers["x-shopify-event-id"] = f"{headers['x-shopify-event-id']}-{n}"
    elif event.get("body"):
        if event.get("isBase64Encoded"):
            raw = base64.b64decode(event["body"])
            event["body"] = base64.b64encode(raw + f"&n={n}".encode()).decode()
        else:
            event["body"] = event["body"] + " " * n
    return json.dumps(event).encode()


class Run:
    """One child process's view of the Runtime API: its queue of events and what it answered."""

    def __init__(self, event_body, count, gap_s=0.0):
        self.events = queue.Queue()
        self.pending = [(str(uuid.uuid4()), nth_delivery(event_body, n)) for n in range(count)]
        self.gap_s = gap_s
        self.expected = count
        self.closed = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.first_next = None  # perf_counter of the first GET next
        self.served = {}  # request id -> perf_counter when `next` was written
        self.answered = {}  # request id -> (perf_counter, kind, body bytes)
        self.order = []  # request ids in serving order
        self.init_error = None
        self.release()

    def release(self):
        """Makes the next event available to `next` (the first at once, the others as answers come)."""
        with self.lock:
            if self.pending and not self.closed.is_set():
                self.events.put(self.pending.pop(0))

    def record_answer(self, request_id, kind, body):
        t = now()
        with self.lock:
            if request_id in self.answered:
                return False
            self.answered[request_id] = (t, kind, body)
            if len(self.answered) >= self.expected:
                self.done.set()
        if self.gap_s > 0:
            timer = threading.Timer(self.gap_s, self.release)
            timer.daemon = True
            timer.start()
        else:
            self.release()
        return True


class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Closing does not wait for handler threads: one blocked on a connection that a child's
    # own child (a profiler, a wrapper script) still holds would never return.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.run = None  # the Run being served, set by the benchmark

    def handle_error(self, request, client_address):
        # A child killed mid-request resets its connection: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)

    @property
    def address(self):
        host, port = self.server_address[:2]
        return f"{host}:{port}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once; no 40 ms delayed-ACK stalls
    server_version = "coldstart-runtime-api"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", headers=()):
        if isinstance(body, str):
            body = body.encode()
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.wfile.flush()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        run = self.server.run
        if self.path != f"{API}/invocation/next" or run is None:
            return self.send(404, '{"errorMessage":"not found"}')
        t = now()
        with run.lock:
            if run.first_next is None:
                run.first_next = t
        while True:
            if run.closed.is_set():
                self.close_connection = True
                return self.send(410, '{"errorMessage":"benchmark over"}')
            try:
                request_id, body = run.events.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        deadline_ms = int(time.time() * 1000) + 30_000
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"),
        ]
        # Recorded before the write: the child may answer before this thread runs again.
        with run.lock:
            run.served[request_id] = now()
            run.order.append(request_id)
        self.send(200, body, headers)

    def do_POST(self):
        body = self.read_body()
        run = self.server.run
        parts = self.path[len(API):].strip("/").split("/") if self.path.startswith(API) else []
        if run is not None and parts == ["init", "error"]:
            run.init_error = body.decode(errors="replace")
            run.done.set()
            return self.send(202, '{"status":"OK"}')
        if run is not None and len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            if parts[1] not in run.served:
                return self.send(400, '{"errorMessage":"unknown request id"}')
            if not run.record_answer(parts[1], parts[2], body):
                return self.send(400, '{"errorMessage":"already answered"}')
            return self.send(202, '{"status":"OK"}')
        return self.send(404, '{"errorMessage":"not found"}')


# ---------------------------------------------------------------------------------------------
# Loopback fakes of the services the function calls, counting what each container does


class FakeService:
    """A loopback stand-in for a service the function calls, as cheap as Python allows so that
    the first response measures the function: one thread, every connection kept alive on a
    selector, requests parsed by hand. (On http.server, with a thread per connection and
    headers parsed by the email package, a new connection and its request took 0.44 ms and a
    request on a kept one 0.17 ms: about 1.5 ms of the queue mode's first response.) It counts
    accepted connections and times each request from its first byte read to its answer sent
    (requests that arrive together are answered one after another, each timed from its own).

    `answer(service, method, target, headers, body)` gives (status, body, kind)."""

    def __init__(self, answer):
        self.answer = answer
        self.secret = None
        self.lock = threading.Lock()
        self.reset()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ, None)
        self.closed = threading.Event()

    def reset(self):
        with self.lock:
            self.connections = 0
            self.calls = {}  # kind -> count
            self.intervals = []  # (start, end) perf_counter of each request

    def record(self, kind, start):
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            self.intervals.append((start, now()))

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "calls": dict(self.calls), "intervals": list(self.intervals)}

    @property
    def url(self):
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def serve_forever(self):
        while not self.closed.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                if key.data is None:
                    self.accept()
                    continue
                try:
                    self.serve(key)
                except Exception as error:  # one bad request ends its connection, not the fake
                    print(f"fake at {self.url}: {error!r}", file=sys.stderr)
                    with self.lock:
                        self.calls["error"] = self.calls.get("error", 0) + 1
                    self.selector.unregister(key.fileobj)
                    key.fileobj.close()

    def shutdown(self):
        self.closed.set()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
            self.selector.register(conn, selectors.EVENT_READ, {"buf": b"", "start": None})

    def serve(self, key):
        conn, state = key.fileobj, key.data
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(conn)
            conn.close()
            return
        if state["start"] is None:
            state["start"] = now()
        buf = state["buf"] + data
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            lines = buf[:head_end].decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body, used = dechunk(buf, head_end + 4)
                if body is None:
                    break
            else:
                used = head_end + 4 + int(headers.get("content-length") or 0)
                if len(buf) < used:
                    break
                body = buf[head_end + 4:used]
            buf = buf[used:]
            status, payload, kind = self.answer(self, method, target, headers, body)
            payload = payload.encode() if isinstance(payload, str) else payload
            head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n").encode()
            conn.setblocking(True)
            try:
                conn.sendall(head + payload)
            except OSError:
                pass
            conn.setblocking(False)
            self.record(kind, state["start"])
            state["start"] = now() if buf else None
        state["buf"] = buf


def dechunk(buf, at):
    """The body of a chunked request starting at `at`, and where the request ends; (None, 0)
    while it is incomplete."""
    body = b""
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None, 0
        size = int(buf[at:line_end].split(b";")[0].strip() or b"0", 16)
        at = line_end + 2
        if size == 0:
            end = buf.find(b"\r\n", at)  # no trailers: the blank line
            return (body, end + 2) if end >= 0 else (None, 0)
        if len(buf) < at + size + 2:
            return None, 0
        body += buf[at:at + size]
        at += size + 2


def answer_activecampaign(service, method, target, headers, body):
    """ActiveCampaign's v1 API: contact_sync succeeds, contact_view_email finds nobody."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
    action = query.get("api_action", ["?"])[0]
    if action == "contact_sync":
        answer = {"subscriber_id": 1, "sendlast_should": 0, "sendlast_did": 0, "result_code": 1,
                  "result_message": "Contact added", "result_output": "json"}
    else:
        answer = {"result_code": 0, "result_message": "Failed: Nothing is returned", "result_output": "json"}
    return 200, json.dumps(answer), action


def answer_secretsmanager(service, method, target, headers, body):
    """Secrets Manager's GetSecretValue, answering the secret the benchmark was given."""
    operation = headers.get("x-amz-target", "")
    if operation != "secretsmanager.GetSecretValue":
        return 400, '{"__type":"UnknownOperationException"}', operation or "?"
    answer = {"ARN": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET_ID}-AbCdEf",
              "Name": SECRET_ID, "SecretString": service.secret, "VersionId": "v1",
              "VersionStages": ["AWSCURRENT"], "CreatedDate": 1767225600}
    return 200, json.dumps(answer), "GetSecretValue"


def answer_sqs(service, method, target, headers, body):
    """SQS's SendMessage (AWS JSON 1.0, as the SDK speaks it): takes the message, answers its id
    and the body's MD5, as SQS does. The queue mode's one call per webhook."""
    operation = headers.get("x-amz-target", "")
    if operation != "AmazonSQS.SendMessage":
        return 400, '{"__type":"com.amazonaws.sqs#UnsupportedOperation"}', operation or "?"
    message = json.loads(body or b"{}").get("MessageBody", "")
    answer = {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(message.encode()).hexdigest()}
    return 200, json.dumps(answer), "SendMessage"


def answer_dynamodb(service, method, target, headers, body):
    """DynamoDB for the deduplication table: every write taken (a first delivery's claim and
    its answer), every read finding nothing."""
    return 200, "{}", headers.get("x-amz-target", "").split(".")[-1] or "?"


def start_fake(answer):
    server = FakeService(answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------------
# Helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def median(values):
    return statistics.median(values) if values else None


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def find_binary(name):
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, name)
        if os.access(path, os.X_OK):
            return path
    return None


def start_sandbox(binary, port, log_path):
    log = open(log_path, "w")
    # No rate limit: cold starts in quick succession would meet it and time the 429s instead.
    env = dict(os.environ, AC_SANDBOX_RATE_LIMIT="0")
    proc = subprocess.Popen([binary, str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    end = time.time() + 30
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"ac-sandbox exited early (code {proc.returncode}); see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/sandbox/contacts", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except Exception:
            time.sleep(0.1)
    stop(proc)
    sys.exit(f"ac-sandbox did not answer on {url} within 30s")


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except Exception:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def status_code(kind, body):
    """The Function URL statusCode of a response, or the error type."""
    if kind == "error":
        try:
            return "error:" + json.loads(body).get("errorType", "?")
        except Exception:
            return "error"
    try:
        return json.loads(body).get("statusCode", "?")
    except Exception:
        return "?"


# ---------------------------------------------------------------------------------------------
# The benchmark


def cold_start(binary, env, event_body, warm, timeout, log, cpu, gap_s, fakes, let_exit=0):
    run = Run(event_body, 1 + warm, gap_s)
    for fake in fakes.values():
        fake.reset()
    # A Runtime API of its own for each child: a killed child's last `next`, still in the
    # old listener's queue, would otherwise take the next child's first event.
    api = RuntimeApi()
    api.run = run
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = {**env, "AWS_LAMBDA_RUNTIME_API": api.address}
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    t0 = now()
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=preexec)
    end = time.time() + timeout
    try:
        while not run.done.wait(0.05):
            if proc.poll() is not None:
                run.done.wait(0.2)  # an answer racing the exit
                if not run.done.is_set():
                    raise RuntimeError(f"{binary} exited with code {proc.returncode} after "
                                       f"{len(run.answered)}/{run.expected} answers")
            if time.time() > end:
                raise RuntimeError(f"{binary} gave {len(run.answered)}/{run.expected} answers in {timeout}s")
        if run.init_error is not None:
            raise RuntimeError(f"{binary} reported an init error: {run.init_error}")
        rss = peak_rss_kib(proc.pid)
    finally:
        if let_exit and proc.poll() is None:
            # The next `next` is answered 410: the runtime ends and the process exits by itself
            # (so a profiler around it, such as callgrind, writes its report).
            run.closed.set()
            try:
                proc.wait(timeout=let_exit)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        run.closed.set()
        api.run = None
        api.shutdown()
        api.server_close()
    first_id = run.order[0]
    answers = [run.answered[i] for i in run.order]
    seen = {name: fake.snapshot() for name, fake in fakes.items()}
    failed = {name: v["calls"]["error"] for name, v in seen.items() if "error" in v["calls"]}
    if failed:
        # A fake that could not answer sends the function down another path (an inline sync
        # when the queue fails): those figures would not be the ones asked for.
        raise RuntimeError(f"a fake could not answer a request: {failed}")
    ac_intervals = seen.get("ac", {}).get("intervals", [])

    def ac_ms(request_id):
        """Time spent inside the fake ActiveCampaign's answers during one invocation."""
        start, end = run.served[request_id], run.answered[request_id][0]
        return sum(b - a for a, b in ac_intervals if a >= start and b <= end) * 1000

    first_end = run.answered[first_id][0]
    # Time inside every fake's answers (AWS's and ActiveCampaign's share) before the first answer.
    fakes_ms = sum(b - a for v in seen.values() for a, b in v["intervals"] if a >= t0 and b <= first_end) * 1000
    return {
        "init_ms": (run.first_next - t0) * 1000,
        "first_response_ms": (first_end - t0) * 1000,
        "first_response_fakes_ms": fakes_ms,
        "warm_ms": [(run.answered[i][0] - run.served[i]) * 1000 for i in run.order[1:]],
        "warm_ac_ms": [ac_ms(i) for i in run.order[1:]],
        "peak_rss_kib": rss,
        "statuses": [status_code(kind, body) for _, kind, body in answers],
        "invocations": len(run.order),
        "services": {name: {"connections": v["connections"], "calls": v["calls"]} for name, v in seen.items()},
    }


def summarize(name, binary, runs):
    warm = [w for r in runs for w in r["warm_ms"]]
    rss = [r["peak_rss_kib"] for r in runs if r["peak_rss_kib"] is not None]
    statuses = {}
    for r in runs:
        for s in r["statuses"]:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
    init = [r["init_ms"] for r in runs]
    first = [r["first_response_ms"] for r in runs]
    warm_ac = [a for r in runs for a in r["warm_ac_ms"]]
    warm_own = [w - a for r in runs for w, a in zip(r["warm_ms"], r["warm_ac_ms"])]
    services = {}
    for r in runs:
        for service, seen in r["services"].items():
            per = services.setdefault(service, {"connections": [], "calls": []})
            per["connections"].append(seen["connections"])
            per["calls"].append(sum(seen["calls"].values()))
    per_container = {service: {"connections_max": max(v["connections"]), "calls_max": max(v["calls"]),
                               "calls_min": min(v["calls"]),
                               "invocations": runs[0]["invocations"]} for service, v in services.items()}
    return {
        "name": name,
        "binary": binary,
        "binary_bytes": os.path.getsize(binary),
        "cold_starts": len(runs),
        "init_ms_median": median(init),
        "init_ms_min": min(init),
        "init_ms_p90": percentile(init, 90),
        "first_response_ms_median": median(first),
        "first_response_ms_min": min(first),
        "first_response_ms_p90": percentile(first, 90),
        # The function's own part: less the time the loopback fakes took to answer it.
        "first_response_without_fakes_ms_median": median([r["first_response_ms"] - r["first_response_fakes_ms"] for r in runs]),
        "first_response_fakes_ms_median": median([r["first_response_fakes_ms"] for r in runs]),
        "warm_invocations": len(warm),
        "warm_ms_median": median(warm),
        "warm_ms_p90": percentile(warm, 90),
        "warm_ms_max": max(warm) if warm else None,
        "warm_ac_ms_median": median(warm_ac) if any(warm_ac) else None,
        "warm_without_ac_ms_median": median(warm_own) if any(warm_ac) else None,
        "warm_without_ac_ms_p90": percentile(warm_own, 90) if any(warm_ac) else None,
        "per_container": per_container,
        "peak_rss_kib_median": median(rss),
        "peak_rss_kib_max": max(rss) if rss else None,
        "statuses": statuses,
        "samples": {"init_ms": init, "first_response_ms": first, "warm_ms": warm, "peak_rss_kib": rss},
    }


def fmt(v, unit="ms"):
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:.3f} ms" if v < 1 else f"{v:.2f} ms"
    if unit == "mib":
        return f"{v / 1024:.1f} MiB"
    return str(v)


def print_table(results, event, args):
    rows = [
        ("init (spawn -> first next), median", "init_ms_median", "ms"),
        ("init min / p90", None, "init"),
        ("first response (spawn -> response), median", "first_response_ms_median", "ms"),
        ("first response min / p90", None, "first"),
        ("first response: inside the fakes' answers, median", "first_response_fakes_ms_median", "ms"),
        ("first response without them, median", "first_response_without_fakes_ms_median", "ms"),
        ("warm (next -> response), median", "warm_ms_median", "ms"),
        ("warm p90", "warm_ms_p90", "ms"),
        ("warm max", "warm_ms_max", "ms"),
        ("warm: inside the fake AC's answers, median", "warm_ac_ms_median", "ms"),
        ("warm without the AC answer, median", "warm_without_ac_ms_median", "ms"),
        ("warm without the AC answer, p90", "warm_without_ac_ms_p90", "ms"),
        ("peak RSS (VmHWM), median", "peak_rss_kib_median", "mib"),
        ("binary size", "binary_bytes", "size"),
        ("answers (statusCode x count)", "statuses", "statuses"),
        ("per container: calls / connections", None, "services"),
    ]
    cells = []
    for label, key, unit in rows:
        line = [label]
        for r in results:
            if unit == "init":
                line.append(f"{fmt(r['init_ms_min'])} / {fmt(r['init_ms_p90'])}")
            elif unit == "first":
                line.append(f"{fmt(r['first_response_ms_min'])} / {fmt(r['first_response_ms_p90'])}")
            elif unit == "size":
                line.append(f"{r[key] / 1048576:.1f} MiB")
            elif unit == "statuses":
                line.append(", ".join(f"{k}x{v}" for k, v in sorted(r[key].items())))
            elif unit == "services":
                line.append("; ".join(
                    f"{name} {v['calls_min']}-{v['calls_max']} calls / {v['connections_max']} conn "
                    f"per {v['invocations']} inv." for name, v in sorted(r["per_container"].items())) or "-")
            else:
                line.append(fmt(r[key], unit))
        cells.append(line)
    header = ["metric"] + [r["name"] for r in results]
    widths = [max(len(row[i]) for row in cells + [header]) for i in range(len(header))]
    print(f"\nevent {os.path.relpath(event, os.getcwd())}: {args.runs} cold starts x (1 + {args.warm}) invocations"
          + (f", {args.gap:g} ms between invocations" if args.gap else "")
          + (f", child pinned to CPU {args.cpu}" if args.cpu is not None else "")
          + ("".join(f", {kv}" for kv in args.env)))
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    if len(results) == 2:
        a, b = results
        for label, key in (("init", "init_ms_median"), ("first response", "first_response_ms_median"),
                           ("warm median", "warm_ms_median"), ("warm p90", "warm_ms_p90"),
                           ("peak RSS", "peak_rss_kib_median")):
            if a.get(key) and b.get(key):
                print(f"ratio {a['name']} / {b['name']}, {label}: {a[key] / b[key]:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=None, help="the Lambda binary (default: target/release/webhook)")
    parser.add_argument("--baseline", default=None, help="a second binary to measure side by side (e.g. a hello-world lambda_http)")
    parser.add_argument("--event", default=os.path.join(ROOT, "events", "health.json"), help="event JSON file")
    parser.add_argument("--runs", "-r", type=int, default=20, help="cold starts per binary (default 20)")
    parser.add_argument("--warm", "-n", type=int, default=50, help="warm invocations after each cold start (default 50)")
    parser.add_argument("--gap", type=float, default=0, metavar="MS",
                        help="idle time between an answer and the next event (default 0: back to back)")
    parser.add_argument("--discard", type=int, default=1, help="untimed cold starts per binary first, to warm the page cache (default 1)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the child (repeatable)")
    parser.add_argument("--secret", default=os.path.join(ROOT, "local", "secret.json"),
                        help="secret JSON copied to a temp file and passed as SECRET_FILE (default local/secret.json)")
    parser.add_argument("--no-secret", action="store_true", help="do not set SECRET_FILE")
    parser.add_argument("--with-sandbox", action="store_true", help="start ac-sandbox and point the secret's api_url at it")
    parser.add_argument("--sandbox-binary", default=None, help="ac-sandbox binary (default: target/release, else target/debug)")
    parser.add_argument("--secrets-manager", action="store_true",
                        help="serve the secret from a fake Secrets Manager (SECRET_ID, as deployed) instead of SECRET_FILE")
    parser.add_argument("--fake-ac", action="store_true",
                        help="point the secret's api_url at a loopback fake ActiveCampaign that counts and times calls")
    parser.add_argument("--fake-sqs", action="store_true",
                        help="queue mode, as deployed: DELIVERY=queue with QUEUE_URL on a loopback fake SQS, "
                             "and the deduplication table on a loopback fake DynamoDB")
    parser.add_argument("--let-exit", type=float, default=0, metavar="SECONDS",
                        help="after the last answer, end the runtime and wait this long for the child to exit by itself "
                             "(for a profiler wrapped around it, e.g. callgrind), then kill it")
    parser.add_argument("--cpu", type=int, default=None, help="pin the child to this CPU")
    parser.add_argument("--timeout", type=float, default=60, help="seconds allowed for one cold start and its invocations")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE", help="also write JSON (to FILE, or stdout)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp directory with the children's logs")
    args = parser.parse_args()

    binary = args.binary or find_binary("webhook")
    if not binary or not os.access(binary, os.X_OK):
        sys.exit("no webhook binary: build it (cargo build --release --bin webhook) or pass --binary")
    targets = [("binary", os.path.abspath(binary))]
    if args.baseline:
        if not os.access(args.baseline, os.X_OK):
            sys.exit(f"baseline {args.baseline} is not executable")
        targets.append(("baseline", os.path.abspath(args.baseline)))
    with open(args.event, "rb") as f:
        event_body = f.read()
    json.loads(event_body)

    tmp = tempfile.mkdtemp(prefix="coldstart-")
    sandbox = None
    fakes = {}
    try:
        extra = {}
        if args.with_sandbox and args.fake_ac:
            sys.exit("--with-sandbox and --fake-ac both stand in for ActiveCampaign: pick one")
        if args.fake_ac:
            fakes["ac"] = start_fake(answer_activecampaign)
        if args.with_sandbox:
            sandbox_bin = args.sandbox_binary or find_binary("ac-sandbox")
            if not sandbox_bin:
                sys.exit("no ac-sandbox binary: cargo build --release --bin ac-sandbox")
            sandbox, sandbox_url = start_sandbox(sandbox_bin, free_port(), os.path.join(tmp, "sandbox.log"))
        if not args.no_secret:
            with open(args.secret) as f:
                secret = json.load(f)
            if sandbox:
                secret["api_url"] = sandbox_url
            if "ac" in fakes:
                secret["api_url"] = fakes["ac"].url
            if args.secrets_manager:
                fakes["secretsmanager"] = start_fake(answer_secretsmanager)
                fakes["secretsmanager"].secret = json.dumps(secret)
                extra.update({
                    "SECRET_ID": SECRET_ID,
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER": fakes["secretsmanager"].url,
                    "AWS_ACCESS_KEY_ID": "coldstart", "AWS_SECRET_ACCESS_KEY": "coldstart",
                    "AWS_SESSION_TOKEN": "coldstart", "AWS_EC2_METADATA_DISABLED": "true",
                })
            else:
                extra["SECRET_FILE"] = os.path.join(tmp, "secret.json")
                with open(extra["SECRET_FILE"], "w") as f:
                    json.dump(secret, f)
        if args.fake_sqs:
            fakes["sqs"] = start_fake(answer_sqs)
            fakes["dynamodb"] = start_fake(answer_dynamodb)
            extra.update({
                "DELIVERY": "queue",
                "QUEUE_URL": f"{fakes['sqs'].url}/123456789012/contacts",
                "AWS_ENDPOINT_URL_SQS": fakes["sqs"].url,
                # The template's deduplication table, as deployed.
                "IDEMPOTENCY_TABLE": "coldstart-idempotency",
                "AWS_ENDPOINT_URL_DYNAMODB": fakes["dynamodb"].url,
                "AWS_ACCESS_KEY_ID": "coldstart", "AWS_SECRET_ACCESS_KEY": "coldstart",
                "AWS_SESSION_TOKEN": "coldstart", "AWS_EC2_METADATA_DISABLED": "true",
            })
        for kv in args.env:
            key, sep, value = kv.partition("=")
            if not sep:
                sys.exit(f"--env wants KEY=VALUE, got {kv!r}")
            extra[key] = value
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "coldstart",
            "AWS_REGION": "us-east-1",
            **extra,
        }

        logs = {name: open(os.path.join(tmp, f"{name}.log"), "w") for name, _ in targets}
        runs = {name: [] for name, _ in targets}
        for i in range(args.discard + args.runs):
            # Alternate the order each round, so drift on the machine hits both binaries alike.
            for name, path in (targets if i % 2 == 0 else targets[::-1]):
                try:
                    result = cold_start(path, env, event_body, args.warm, args.timeout, logs[name], args.cpu,
                                        args.gap / 1000, fakes, args.let_exit)
                except RuntimeError as e:
                    logs[name].flush()
                    with open(logs[name].name, errors="replace") as f:
                        tail = "".join(f.readlines()[-15:])
                    sys.exit(f"{name}: {e}\n--- last lines of its output ---\n{tail}")
                if i >= args.discard:
                    runs[name].append(result)
            print(f"\rcold start {i + 1}/{args.discard + args.runs}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)

        results = [summarize(os.path.basename(path), path, runs[name])
                   for name, path in targets]
        if len(results) == 2 and results[0]["name"] == results[1]["name"]:
            results[1]["name"] = "baseline"
        print_table(results, args.event, args)
        if sandbox:
            with urllib.request.urlopen(f"{sandbox_url}/sandbox/contacts") as r:
                print(f"ac-sandbox holds {len(json.load(r)['contacts'])} contact(s) after the run")
        if args.json:
            out = {"event": os.path.abspath(args.event), "runs": args.runs, "warm": args.warm, "cpu": args.cpu,
                   "gap_ms": args.gap, "env": args.env,
                   "with_sandbox": args.with_sandbox, "secrets_manager": args.secrets_manager,
                   "fake_ac": args.fake_ac, "results": results}
            if args.json == "-":
                print(json.dumps(out, indent=2))
            else:
                with open(args.json, "w") as f:
                    json.dump(out, f, indent=2)
    finally:
        for fake in fakes.values():
            fake.shutdown()
        stop(sandbox)
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
