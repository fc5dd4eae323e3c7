#!/usr/bin/env python3
"""Builds the fuzz seed corpora and runs every cargo-fuzz target for a given time each.

    python3 scripts/fuzz.py 60                 # 60 s per target, every target
    python3 scripts/fuzz.py 300 json_body      # one target
    python3 scripts/fuzz.py --seeds-only       # only (re)build fuzz/corpus/*

Seeds come from events/ (each Function URL event's route, query, headers and body, base64
undone), mapping.toml and sample ActiveCampaign answers, in the input formats documented in
src/fuzzing.rs. Targets run one at a time under `nice -n 10`; at the end a table gives, per
target, executions, coverage (cov/ft of libFuzzer's last status line), corpus size and the
crash/timeout/OOM artifacts found. Logs: fuzz/logs/<target>.log; artifacts:
fuzz/artifacts/<target>/. Corpora, logs and artifacts are not committed; an artifact that
shows a bug becomes a file in fuzz/regressions/<target>/, replayed by `cargo test`.
"""

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
CORPUS = FUZZ / "corpus"
SEP = b"\xff"

# Target -> libFuzzer -max_len: bodies up to 64 KiB, headers and expressions much shorter.
TARGETS = {
    "json_body": 65536,
    "form_body": 65536,
    "multipart_body": 65536,
    "batch_body": 65536,
    "signature_headers": 4096,
    "sender_request": 65536,
    "mapping_template": 8192,
    "mapping_config": 16384,
    "ac_response": 16384,
}
LIBFUZZER_FLAGS = ["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"]
# cargo-fuzz's sanitizer: the library is safe Rust, so panics (not memory errors) are what
# there is to find, and no sanitizer roughly doubles executions per second.
SANITIZER = "none"

SIGNATURE_HEADERS = [
    "stripe-signature", "calendly-webhook-signature", "paddle-signature",
    "x-shopify-hmac-sha256", "x-wc-webhook-signature", "typeform-signature",
    "tally-signature", "x-signature", "x-webflow-signature", "x-hubspot-signature-v3",
    "x-hubspot-signature", "webhook-signature", "svix-signature",
]
TIMESTAMP_HEADERS = [
    "x-webflow-timestamp", "x-hubspot-request-timestamp", "webhook-timestamp",
    "svix-timestamp", "x-hubspot-signature-version",
]
ID_HEADERS = ["webhook-id", "svix-id"]

AC_ANSWERS = [
    (0, b"", {"subscriber_id": 12, "sendlast_should": 0, "result_code": 1,
              "result_message": "Contact added", "result_output": "json"}),
    (0, b"", {"subscriber_id": "13", "result_code": "1", "result_message": "Contact updated"}),
    (0, b"", {"result_code": 0, "result_message": "Invalid email address"}),
    (0, b"", {"subscriber_id": 7, "result_code": 1, "lists": {
        "1": {"listid": "1", "status": "1"}, "2": {"listid": 2, "status": 2}}}),
    (0, b"", {"result_code": 1, "lists": [{"listid": "3", "status": "2"}]}),
    (1, b"", {"success": 1, "queued_contacts": 3, "batchId": "0a1b2c", "message": "queued"}),
    (2, b"", {"success": 0, "message": "Contacts were not imported", "failureReasons": [
        {"contact": 0, "failureReason": "Field 'email' incorrect format"}, "refused"]}),
    (2, b"", {"Success": 0, "Message": "Rate limit exceeded"}),
    (0, b"", {"status": "completed", "success": ["12", 13], "failure": ["a@b.co"]}),
    (0, b"", {"status": False, "success": [], "failure": []}),
    (7, b"30", {"message": "Too Many Requests"}),
    (7, b"Wed, 21 Oct 2026 07:28:00 GMT", None),
    (8, b"", None),
    (3, b"", {"message": "Forbidden"}),
]
AC_RAW_BODIES = [b"", b"<html><body>502 Bad Gateway</body></html>", b"not json", b"{}"]

BATCH_SAMPLES = [
    (b"text/csv", b"Email,First Name,Company\nada@example.com,Ada,Engines\n"
                  b"\"grace@example.com\",\"Grace, RN\",\n"),
    (b"text/csv; charset=utf-8", b"email;name\r\na@b.co;A\r\n"),
    (b"application/x-ndjson", b"{\"email\":\"ada@example.com\"}\n\n{\"email\":\"b@c.co\"}\n"),
    (b"application/json", b"{\"contacts\":[{\"email\":\"ada@example.com\",\"tags\":\"a\"}]}"),
    (b"application/json", b"[{\"Email\":\"ada@example.com\"},{\"Email\":\"grace@example.com\"}]"),
]


def events():
    """(route, query, headers, body) of every Function URL event in events/."""
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        body = event.get("body") or ""
        body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        yield path.stem, event.get("rawPath", "/"), event.get("rawQueryString", ""), headers, body


def header_block(headers):
    return "".join(f"{k}: {v}\n" for k, v in headers.items()).encode()


def template_sources():
    """Every expression string of mapping.toml, plus placeholders it does not use."""
    mapping = tomllib.loads((ROOT / "mapping.toml").read_text())
    found = []

    def walk(value):
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(mapping)
    found += ["$..email", "$.line_items[?@.price > 10].sku", "{topic}:{route}:{sender}",
              "{{literal}} {product}", "$.a[0:5:2]", "$[*][*]", "x{$.missing}y"]
    return sorted({s for s in found if s})


def route_tables():
    """mapping.toml whole and cut at each [routes.*] table, for the config loader."""
    text = (ROOT / "mapping.toml").read_text()
    pieces = re.split(r"(?m)^(?=\[routes\.[a-z0-9_-]+\]\s*$)", text)
    return [text] + [p for p in pieces if p.strip().startswith("[routes.")]


def build_seeds():
    seeds = {target: {} for target in TARGETS}
    bodies_json = []
    for name, raw_path, query, headers, body in events():
        route = raw_path.removeprefix("/webhooks/") if raw_path.startswith("/webhooks/") else raw_path
        seeds["sender_request"][name] = SEP.join(
            [route.encode(), query.encode(), header_block(headers), body])
        content_type = headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media in ("application/json", "") and body[:1] in (b"{", b"["):
            seeds["json_body"][name] = body
            bodies_json.append(body)
        if media == "application/x-www-form-urlencoded":
            seeds["form_body"][name] = body
        if media == "multipart/form-data":
            seeds["multipart_body"][name] = content_type.encode() + SEP + body
        if raw_path == "/webhooks/batch":
            seeds["batch_body"][name] = content_type.encode() + SEP + body
        signature = next((headers[h] for h in SIGNATURE_HEADERS if h in headers), None)
        if signature is not None:
            timestamp = next((headers[h] for h in TIMESTAMP_HEADERS if h in headers), "")
            delivery = next((headers[h] for h in ID_HEADERS if h in headers), "")
            seeds["signature_headers"][name] = bytes([len(seeds["signature_headers"]) % 256]) + \
                SEP.join([signature.encode(), timestamp.encode(), delivery.encode(), body])
    for i, (content_type, body) in enumerate(BATCH_SAMPLES):
        seeds["batch_body"][f"sample-{i}"] = content_type + SEP + body
    for i, source in enumerate(template_sources()):
        payload = bodies_json[i % len(bodies_json)] if bodies_json else b"{}"
        seeds["mapping_template"][f"expr-{i}"] = source.encode() + SEP + payload
    for i, text in enumerate(route_tables()):
        seeds["mapping_config"][f"mapping-{i}"] = text.encode()
    for i, (status, retry_after, body) in enumerate(AC_ANSWERS):
        encoded = json.dumps(body).encode() if body is not None else b""
        seeds["ac_response"][f"answer-{i}"] = bytes([status]) + retry_after + SEP + encoded
    for i, body in enumerate(AC_RAW_BODIES):
        seeds["ac_response"][f"raw-{i}"] = bytes([i * 3]) + SEP + body

    for target, files in seeds.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / f"seed-{name}").write_bytes(data)
        # Every input that once broke a target stays in its corpus.
        regressions = FUZZ / "regressions" / target
        if regressions.is_dir():
            for path in regressions.iterdir():
                shutil.copyfile(path, directory / f"regression-{path.name}")
        print(f"{target}: {len(files)} seeds", file=sys.stderr)


def ensure_cargo_fuzz():
    probe = subprocess.run(["cargo", "+nightly", "fuzz", "--version"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(["cargo", "install", "cargo-fuzz", "--locked"], check=True)


LAST_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)


def run_target(target, seconds):
    artifacts = FUZZ / "artifacts" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    logs = FUZZ / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{target}.log"
    command = [
        "nice", "-n", "10", "cargo", "+nightly", "fuzz", "run", "-s", SANITIZER, target,
        str(CORPUS / target), "--",
        f"-max_total_time={seconds}", f"-max_len={TARGETS[target]}",
        f"-artifact_prefix={artifacts}/", *LIBFUZZER_FLAGS,
    ]
    with log.open("w") as out:
        result = subprocess.run(command, cwd=FUZZ, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    statuses = LAST_STATUS.findall(text)
    last = statuses[-1] if statuses else ("?", "?", "?", "?")
    found = sorted(p.name for p in artifacts.iterdir())
    # Plateau: `cov` half-way through the run (by executions) against `cov` at the end.
    total = int(execs.group(1)) if execs else 0
    half_cov = next((cov for n, cov, _, _ in reversed(statuses) if int(n) <= total // 2), "?")
    rss = re.search(r"stat::peak_rss_mb:\s*(\d+)", text)
    return {
        "half_cov": half_cov,
        "rss": rss.group(1) if rss else "?",
        "target": target,
        "execs": execs.group(1) if execs else last[0],
        "cov": last[1],
        "ft": last[2],
        # libFuzzer's own corpus (distinct features), not the files left in the directory.
        "corpus": last[3],
        "crashes": len(found),
        "exit": result.returncode,
        "artifacts": found,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seconds", nargs="?", type=int, default=60, help="seconds per target")
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--seeds-only", action="store_true")
    args = parser.parse_args()
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    build_seeds()
    if args.seeds_only:
        return 0
    ensure_cargo_fuzz()
    subprocess.run(["nice", "-n", "10", "cargo", "+nightly", "fuzz", "build", "-s", SANITIZER],
                   cwd=FUZZ, check=True)
    rows = [run_target(target, args.seconds) for target in (args.targets or TARGETS)]
    # cov@half: `cov` half-way through the run; close to `cov` means a plateau.
    print(f"\n{'target':<20}{'execs':>12}{'cov@half':>10}{'cov':>8}{'ft':>8}"
          f"{'corpus':>8}{'rss-MB':>8}{'crashes':>9}")
    for row in rows:
        print(f"{row['target']:<20}{row['execs']:>12}{row['half_cov']:>10}{row['cov']:>8}"
              f"{row['ft']:>8}{row['corpus']:>8}{row['rss']:>8}{row['crashes']:>9}")
        for name in row["artifacts"]:
            print(f"    fuzz/artifacts/{row['target']}/{name}")
    return 1 if any(row["crashes"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
