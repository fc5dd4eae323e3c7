#!/usr/bin/env python3
"""Monthly AWS cost of the stack at 10,000, 1,000,000 and 10,000,000 webhooks, beside Zapier.

Reads the SAM template's defaults from template.yaml (memory, batch size and window, worker
concurrency, secret TTL, log retention, the reconciler's schedule, alarms and dashboards) and
models every request each webhook causes. Every model figure is a flag (see --help), and
`--measured FILE` takes the same names from a JSON object (flags given on the command line win),
so scripts/perf.py can pass measured durations and log sizes. Standard library only.

    python3 scripts/cost.py                    # Markdown table and assumptions
    python3 scripts/cost.py --json             # the same numbers as JSON
    python3 scripts/cost.py --measured m.json --webhook-ms 3.4
"""
import argparse
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "template.yaml")
HOURS = 730  # AWS bills a month as 730 hours
SECONDS = HOURS * 3600
DAYS = HOURS / 24
GB = 1024 ** 3
READ = "read 2026-12-04"
LIST = "list price as of 2026-12, page not stored"

# (USD, per how many, of what, source): us-east-1, on-demand, Lambda arm64. Where the official
# page was stored without its figures (AWS renders them client-side), the figure comes from the
# page named after it.
PRICES = {
    "lambda_request": (0.20, 1e6, "requests",
                       "https://aws.amazon.com/lambda/pricing/ (stored, no figures); figure from "
                       "https://cloudchipr.com/blog/aws-lambda-pricing, " + READ),
    "lambda_gb_s": (0.0000133334, 1, "GB-second, arm64, first 7.5 billion GB-s",
                    "https://aws.amazon.com/lambda/pricing/ (stored, no figures); figure from "
                    "https://cloudchipr.com/blog/aws-lambda-pricing, " + READ),
    "sqs_request": (0.40, 1e6, "requests (64 KB chunks), standard queue",
                    "https://aws.amazon.com/sqs/pricing/ not stored; figure from "
                    "https://cloudburn.io/blog/amazon-sqs-pricing (March 2026), " + READ),
    "ddb_wru": (0.625, 1e6, "write request units, on-demand (since the Nov 2024 cut)",
                "https://aws.amazon.com/dynamodb/pricing/on-demand/ (stored, no figures); figure "
                "from https://airbyte.com/data-engineering-resources/dynamodb-pricing, " + READ),
    "ddb_rru": (0.125, 1e6, "read request units, on-demand",
                "as ddb_wru, " + READ),
    "ddb_storage": (0.25, 1, "GB-month, Standard table class",
                    "https://aws.amazon.com/dynamodb/pricing/ (stored: first 25 GB free, then "
                    "$0.25 per GB-month), " + READ),
    "secret_month": (0.40, 1, "secret-month",
                     "https://aws.amazon.com/secrets-manager/pricing/ not stored; quoted from it "
                     "in api-evangelist/amazon-secrets-manager plans/…-pricing.yml, " + READ),
    "secret_call": (0.05, 1e4, "API calls", "as secret_month, " + READ),
    "logs_ingest": (0.50, 1, "GB ingested, Standard class (first tier of Lambda's logs)",
                    "https://aws.amazon.com/cloudwatch/pricing/ (stored, free tier only); "
                    "figure from https://hykell.com/kb/platform-specific-guides/"
                    "aws-cloudwatch-logs-pricing and https://www.duckbillgroup.com/?p=9080, "
                    + READ),
    "logs_storage": (0.03, 1, "GB-month stored", "as logs_ingest (hykell.com), " + READ),
    "metric": (0.30, 1, "custom metric-month, first 10,000",
               "https://signoz.io/guides/cloudwatch-pricing, " + READ),
    "alarm_metric": (0.10, 1, "standard-resolution alarm metric-month", LIST),
    "dashboard": (3.00, 1, "dashboard-month", LIST),
    # Hosted platforms: the stored pages give only the lowest tiers (see the assumptions).
    "zapier_plan": (19.99, 1, "month of Professional, 750 tasks, billed annually",
                    "https://zapier.com/pricing not stored; figure from "
                    "https://exlegacy.com/learn/zapier-task-pricing-explained.html; overage "
                    "1.25x the plan's task cost up to 3x its tasks: https://help.zapier.com/hc/"
                    "en-us/articles/15279018245901, " + READ),
    "make_plan": (113.85, 1, "month of Core, 150,000 operations (Make's own worked example)",
                  "https://www.make.com/en/help/general/changing-your-subscription--upgrading,"
                  "-downgrading,-or-canceling-, " + READ),
}
FREE = {  # always-free allowances per account and month
    "lambda_requests": 1e6, "lambda_gb_s": 400_000, "sqs_requests": 1e6, "ddb_gb": 25,
    "logs_gb": 5, "custom_metrics": 10, "alarm_metrics": 10, "dashboards": 3,
}
VOLUMES = "10000,1000000,10000000"


def template_defaults(path=TEMPLATE):
    """The figures the template fixes, so a changed default changes the estimate."""
    text = open(path).read()

    def param(name):
        return float(re.search(rf"^  {name}:\n(?:    .*\n)*?    Default: (\S+)", text, re.M)[1])

    blocks = re.split(r"\n  (?=\w+:\n    Type: )", text)
    alarms = [b for b in blocks if "Type: AWS::CloudWatch::Alarm" in b]
    return {
        "memory_mb": float(re.search(r"MemorySize: (\d+)", text)[1]),
        "batch_size": param("WorkerBatchSize"),
        "batch_window_secs": param("WorkerBatchWindowSeconds"),
        "worker_containers": param("WorkerMaxConcurrency"),
        "secret_ttl_secs": param("SecretTtlSeconds"),
        "log_retention_days": param("LogRetentionDays"),
        "reconcile_every_mins": float(re.search(r"rate\((\d+) minutes?\)", text)[1]),
        "reconciler_timeout_ms": 1000 * float(re.search(
            r"Timeout: (\d+)", next(b for b in blocks if b.startswith("ImportReconcilerFunction:"))
        )[1]),
        # A metric-math alarm is billed per metric it reads.
        "alarm_metrics": float(sum(max(1, b.count("MetricStat:")) for b in alarms)),
        "dashboards": float(sum("Type: AWS::CloudWatch::Dashboard" in b for b in blocks)),
    }


# name: (default, help). None: taken from template.yaml.
MODEL = {
    "webhook_ms": (2.0, "webhook function's billed duration per invocation, ms (rounded up)"),
    "memory_mb": (None, "memory of every function, MB"),
    "cold_start_share": (0.01, "share of webhook invocations that are cold starts"),
    "cold_init_ms": (10.0, "billed init of a cold start, ms (provided.al2023 bills init)"),
    "webhook_containers": (2.0, "warm webhook containers, each reading the secret once per TTL"),
    "batch_size": (None, "the worker's BatchSize"),
    "batch_window_secs": (None, "the worker's MaximumBatchingWindowInSeconds"),
    "contacts_per_batch": (0.0, "fixed contacts per worker batch; 0 models it from the rate"),
    "gathering_pollers": (1.0, "pollers the arrivals split between while a batch gathers"),
    "worker_batch_base_ms": (200.0, "sync-worker's billed ms per batch"),
    "worker_ms_per_contact": (2.0, "sync-worker's billed ms per contact"),
    "worker_containers": (None, "warm sync-worker containers (MaximumConcurrency)"),
    "min_bulk_contacts": (10.0, "fewest contacts of a batch that go through a bulk import"),
    "contacts_per_import": (250.0, "most contacts in one bulk import"),
    "import_bytes_per_contact": (300.0, "bytes a contact adds to its import's record"),
    "import_record_bytes": (300.0, "bytes of an import record besides its contacts"),
    "import_lifetime_days": (30.0, "days an import record lives (RECORD_LIFETIME, its TTL)"),
    "callback_ms": (300.0, "import-callback's billed ms (waits on ActiveCampaign's import/info)"),
    "reconciler_ms": (50.0, "import-reconciler's billed ms besides its scan"),
    "reconcile_every_mins": (None, "the reconciler's schedule, minutes"),
    "reconciler_timeout_ms": (None, "the reconciler's Timeout, ms"),
    "secret_ttl_secs": (None, "SECRET_TTL_SECS"),
    "message_kb": (2.0, "queued message size, KB (SQS bills per 64 KB chunk)"),
    "messages_per_receive": (1.0, "messages a ReceiveMessage returns while the queue is busy"),
    "idle_pollers": (5.0, "the event source mapping's pollers on a quiet queue"),
    "idle_receives_per_min": (3.0, "ReceiveMessage calls per poller per minute (20 s waits)"),
    "log_bytes_per_webhook": (600.0, "webhook function's log bytes per webhook (JSON, INFO)"),
    "log_bytes_per_batch": (800.0, "sync-worker's log bytes per batch"),
    "log_bytes_per_import": (600.0, "import-callback's log bytes per import"),
    "log_bytes_per_reconcile": (300.0, "reconciler's log bytes per run"),
    "log_retention_days": (None, "LogRetentionDays"),
    "custom_metrics": (27.0, "custom metric series reporting all month (15 names, 12 by Route "
                             "and overall, one route): an upper bound"),
    "alarm_metrics": (None, "alarm metrics (counted in template.yaml)"),
    "dashboards": (None, "dashboards (counted in template.yaml)"),
    "zapier_tasks_per_webhook": (1.0, "Zapier tasks per webhook (Catch Hook free, one "
                                      "Create/Update Contact)"),
    "zapier_plan_tasks": (750.0, "tasks in the Zapier plan whose price is used"),
    "make_ops_per_webhook": (2.0, "Make operations per webhook (the webhook module counts, and "
                                  "the ActiveCampaign module)"),
    "make_plan_ops": (150_000.0, "operations in the Make plan whose price is used"),
}


def poisson(k, mu):
    return math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1)) if mu > 0 else float(k == 0)


def batching(w, p):
    """The sync-worker's batches. The first message opens a batch, which gathers the messages
    arriving (Poisson, at the month's mean rate) in the batching window, or closes when full."""
    size = int(p["batch_size"])
    if p["contacts_per_batch"]:
        dist = {min(size, p["contacts_per_batch"]): 1.0}
    else:
        mu = w / SECONDS / p["gathering_pollers"] * p["batch_window_secs"]
        dist = {1 + k: poisson(k, mu) for k in range(size - 1)}
        dist[size] = max(0.0, 1 - sum(dist.values()))

    def mean(f):
        return sum(q * f(n) for n, q in dist.items())

    def imports(n):  # batches of fewer people are synced one by one
        return math.ceil(n / p["contacts_per_import"]) if n >= p["min_bulk_contacts"] else 0

    contacts = mean(lambda n: n)
    batches = w / contacts
    per_batch = mean(imports)
    imported = mean(lambda n: n if imports(n) else 0)
    return {
        "contacts_per_batch": contacts,
        "batches": batches,
        "worker_ms": mean(lambda n: math.ceil(p["worker_batch_base_ms"] +
                                              p["worker_ms_per_contact"] * n)),
        "imports": batches * per_batch,
        "contacts_per_import": imported / per_batch if per_batch else 0.0,
        # Lambda deletes a batch's messages with DeleteMessageBatch, ten at a time.
        "deletes": batches * mean(lambda n: math.ceil(n / 10)),
    }


def price(name):
    usd, per, _, _ = PRICES[name]
    return usd / per


def imports_table(b, p):
    """The imports table: its record size, and its size with every record kept for its TTL."""
    record = p["import_record_bytes"] + b["contacts_per_import"] * p["import_bytes_per_contact"]
    return record, b["imports"] * p["import_lifetime_days"] / DAYS * record


def reconciler(b, p):
    """One run queries the sparse index of open imports (keys only, eventually consistent), which
    holds only the imports still open past the reconciler's age: none while callbacks arrive,
    so one read unit a run. (It scanned the whole table before: 1 RRU per 4 KB of every record
    kept for its TTL, 3 billion read units a month at 10 million webhooks.)"""
    return {"runs": HOURS * 60 / p["reconcile_every_mins"], "ms": p["reconciler_ms"],
            "scan_rru": 1, "times_out": False}


def lambda_cost(w, p, b, r):
    runs = [  # (invocations, billed ms each)
        (w, math.ceil(p["webhook_ms"]) + p["cold_start_share"] * math.ceil(p["cold_init_ms"])),
        (b["batches"], b["worker_ms"]),
        (b["imports"], math.ceil(p["callback_ms"])),
        (r["runs"], math.ceil(r["ms"])),
    ]
    requests = sum(n for n, _ in runs)
    gb_s = sum(n * ms for n, ms in runs) / 1000 * p["memory_mb"] / 1024
    cost = requests * price("lambda_request") + gb_s * price("lambda_gb_s")
    free = (max(0, requests - FREE["lambda_requests"]) * price("lambda_request") +
            max(0, gb_s - FREE["lambda_gb_s"]) * price("lambda_gb_s"))
    return cost, free, {"lambda_requests": requests, "lambda_gb_s": gb_s}


def sqs_cost(w, p, b, r):
    chunks = math.ceil(p["message_kb"] / 64)
    idle = p["idle_pollers"] * p["idle_receives_per_min"] * HOURS * 60
    requests = w * chunks + w / p["messages_per_receive"] * chunks + b["deletes"] + idle
    cost = requests * price("sqs_request")
    return cost, max(0, requests - FREE["sqs_requests"]) * price("sqs_request"), {
        "sqs_requests": requests, "sqs_idle_receives": idle}


def dynamodb_cost(w, p, b, r):
    record, table = imports_table(b, p)
    # Claim and answer by the webhook function, claim and settle by the worker (items < 1 KB);
    # per import the worker's put and the callback's settle, each of the whole record, and the
    # open-imports index's entry written and removed.
    wru = 4 * w + b["imports"] * (2 * math.ceil(record / 1024) + 2)
    # The callback's consistent GetItem of the record, and the reconciler's scans.
    rru = b["imports"] * math.ceil(record / 4096) + r["runs"] * r["scan_rru"]
    gb = table / GB
    requests = wru * price("ddb_wru") + rru * price("ddb_rru")
    return (requests + gb * price("ddb_storage"),
            requests + max(0, gb - FREE["ddb_gb"]) * price("ddb_storage"),
            {"ddb_wru": wru, "ddb_rru": rru, "imports_table_gb": gb})


def secrets_cost(w, p, b, r):
    # One GetSecretValue per container per TTL, and one per new webhook container (a cold
    # start), never more than the invocations.
    per_container = SECONDS / p["secret_ttl_secs"]
    calls = (min(w, p["webhook_containers"] * per_container + p["cold_start_share"] * w) +
             min(b["batches"], p["worker_containers"] * per_container) +
             min(b["imports"], per_container) + min(r["runs"], per_container))
    cost = price("secret_month") + calls * price("secret_call")
    return cost, cost, {"secret_calls": calls}


def logs_cost(w, p, b, r):
    gb = (w * p["log_bytes_per_webhook"] + b["batches"] * p["log_bytes_per_batch"] +
          b["imports"] * p["log_bytes_per_import"] + r["runs"] * p["log_bytes_per_reconcile"]) / GB
    stored = gb * min(p["log_retention_days"], DAYS) / DAYS  # steady state, uncompressed
    storage = stored * price("logs_storage")
    return (gb * price("logs_ingest") + storage,
            max(0, gb - FREE["logs_gb"]) * price("logs_ingest") + storage,
            {"logs_gb": gb, "logs_stored_gb": stored})


def cloudwatch_other_cost(w, p, b, r):
    items = {"custom_metrics": "metric", "alarm_metrics": "alarm_metric", "dashboards": "dashboard"}
    cost = sum(p[n] * price(k) for n, k in items.items())
    free = sum(max(0, p[n] - FREE[n]) * price(k) for n, k in items.items())
    return cost, free, {}


SERVICES = [("lambda", "Lambda", lambda_cost), ("sqs", "SQS", sqs_cost),
            ("dynamodb", "DynamoDB", dynamodb_cost),
            ("secrets_manager", "Secrets Manager", secrets_cost),
            ("cloudwatch_logs", "CloudWatch Logs", logs_cost),
            ("cloudwatch_other", "CloudWatch metrics, alarms, dashboard", cloudwatch_other_cost)]


def estimate(w, p):
    b = batching(w, p)
    r = reconciler(b, p)
    row = {"webhooks": w}
    usage = {k: b[k] for k in ("contacts_per_batch", "batches", "imports", "contacts_per_import")}
    usage.update(reconciler_scan_rru=r["scan_rru"], reconciler_ms=r["ms"],
                 reconciler_times_out=r["times_out"])
    total = free = 0.0
    for key, _, cost in SERVICES:
        c, f, u = cost(w, p, b, r)
        row[key] = c
        total, free = total + c, free + f
        usage.update(u)
    row.update(total_aws=total, total_aws_free_tier=free,
               zapier=w * p["zapier_tasks_per_webhook"] * price("zapier_plan") /
               p["zapier_plan_tasks"],
               make=w * p["make_ops_per_webhook"] * price("make_plan") / p["make_plan_ops"],
               usage=usage)
    return row


def usd(x):
    return f"${x:,.2f}"


def markdown(rows, p):
    heads = (["webhooks/month"] + [h for _, h, _ in SERVICES] +
             ["total AWS", "total AWS, always-free tiers applied",
              "hosted: Zapier (per task, extrapolated)", "hosted: Make (per op, extrapolated)"])
    out = ["| " + " | ".join(heads) + " |", "|" + "---:|" * len(heads)]
    for row in rows:
        cells = [f"{row['webhooks']:,}"] + [usd(row[k]) for k, _, _ in SERVICES]
        cells += [f"**{usd(row['total_aws'])}**", usd(row["total_aws_free_tier"]),
                  usd(row["zapier"]), usd(row["make"])]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| webhooks/month | contacts/batch | worker invocations | bulk imports | "
                "SQS requests | WRU | RRU | reconciler RRU/run | log GB |",
            "|" + "---:|" * 9]
    for row in rows:
        u = row["usage"]
        out.append(f"| {row['webhooks']:,} | {u['contacts_per_batch']:.2f} | {u['batches']:,.0f} "
                   f"| {u['imports']:,.0f} | {u['sqs_requests']:,.0f} | {u['ddb_wru']:,.0f} | "
                   f"{u['ddb_rru']:,.0f} | {u['reconciler_scan_rru']:,} | {u['logs_gb']:.3f} |")
    late = [f"{r['webhooks']:,}" for r in rows if r["usage"]["reconciler_times_out"]]
    out += ["", "Assumptions:"] + [f"- {a}" for a in assumptions(p, late)]
    out += ["", "Prices (USD):"]
    for k, (v, per, unit, src) in PRICES.items():
        amount = f"{v:.10f}".rstrip("0")
        amount += "0" * max(0, 2 - len(amount.split(".")[1]))  # at least cents
        out.append(f"- `{k}`: ${amount} per {f'{per:,.0f} ' if per > 1 else ''}{unit}. "
                   f"Source: {src}")
    return "\n".join(out)


def assumptions(p, late):
    def f(name):
        return f"{p[name]:g}"
    lines = [
        "us-east-1, on-demand, arm64; a month is 730 hours. 'total AWS' has no free tier "
        "(accounts differ); the next column takes the always-free allowances (Lambda 1M "
        "requests and 400,000 GB-s, SQS 1M requests, DynamoDB 25 GB, CloudWatch 5 GB of logs, "
        "10 metrics, 10 alarm metrics, 3 dashboards; none for Secrets Manager) as if nothing "
        "else in the account used them.",
        f"From template.yaml: {f('memory_mb')} MB, BatchSize {f('batch_size')}, batching "
        f"window {f('batch_window_secs')} s, MaximumConcurrency {f('worker_containers')}, "
        f"secret TTL {f('secret_ttl_secs')} s, logs kept {f('log_retention_days')} days, "
        f"reconciler every {f('reconcile_every_mins')} min, {f('alarm_metrics')} alarm metrics "
        f"(metric-math alarms count each metric), {f('dashboards')} dashboard.",
        f"Webhook: 1 request of {f('webhook_ms')} ms (billed per 1 ms, rounded up), "
        f"{f('cold_start_share')} of them adding {f('cold_init_ms')} ms of billed init; "
        f"1 SendMessage of {f('message_kb')} KB (1 request per 64 KB).",
        "Batches: " + (f"{f('contacts_per_batch')} contacts each (given)." if
                       p["contacts_per_batch"] else
                       f"the first message opens a batch, which takes the messages arriving in "
                       f"the next {f('batch_window_secs')} s (Poisson at the month's mean rate, "
                       f"split between {f('gathering_pollers')} gathering poller(s)) up to "
                       f"{f('batch_size')}; real traffic is burstier, so fuller batches.") +
        f" Worker: {f('worker_batch_base_ms')} ms + {f('worker_ms_per_contact')} ms per contact "
        f"per batch; a batch of {f('min_bulk_contacts')}+ contacts becomes one bulk import per "
        f"{f('contacts_per_import')}, smaller ones are synced one by one.",
        f"SQS: {f('messages_per_receive')} message(s) per ReceiveMessage while busy, one "
        f"DeleteMessageBatch per 10 deleted, plus idle polling of {f('idle_pollers')} pollers x "
        f"{f('idle_receives_per_min')} ReceiveMessage a minute. AWS documents 'long polling' and "
        "that at low traffic Lambda 'scales back the processing to five concurrent batches, and "
        "can optimize to as few as 2 ... this optimization is not available when you enable the "
        "maximum concurrency setting' (the template sets it): https://docs.aws.amazon.com/"
        "lambda/latest/dg/services-sqs-scaling.html. The 20 s wait (3 calls a minute) is assumed, "
        "not documented there.",
        "DynamoDB: per webhook 2 writes by the webhook function (claim, answer) and 2 by the "
        "worker (claim, settle), 1 WRU each; per bulk import the worker's PutItem and the "
        f"callback's UpdateItem of the whole record ({f('import_record_bytes')} B + "
        f"{f('import_bytes_per_contact')} B per contact, 1 WRU per KB) and its consistent "
        "GetItem. Records live "
        f"{f('import_lifetime_days')} days, each with an entry in the open-imports index (1 WRU "
        "written, 1 removed when settled); each reconciler run queries that index (1 RRU while "
        "callbacks settle the imports).",
        f"Secrets Manager: 1 secret; one GetSecretValue per container per TTL "
        f"({f('webhook_containers')} webhook, {f('worker_containers')} worker, 1 callback, "
        "1 reconciler container) and one per webhook cold start, never more than the "
        "invocations.",
        f"CloudWatch Logs: {f('log_bytes_per_webhook')} B per webhook, "
        f"{f('log_bytes_per_batch')} B per batch, {f('log_bytes_per_import')} B per import, "
        f"{f('log_bytes_per_reconcile')} B per reconciler run (system logs at WARN add none); "
        "stored for the retention at the ingested size. Other CloudWatch: "
        f"{f('custom_metrics')} custom metric series (EMF, a whole month each: an upper bound; "
        "they are billed by the hour they report).",
        f"Zapier: {f('zapier_tasks_per_webhook')} task per webhook, priced at the only tier the "
        f"stored pages give (Professional, {f('zapier_plan_tasks')} tasks for "
        f"{usd(price('zapier_plan'))}/month billed annually, "
        f"{price('zapier_plan') / p['zapier_plan_tasks']:.4f} USD per task). Higher tiers cost "
        "less per task and are not stored here; help.zapier.com names tiers up to Professional "
        "2M tasks; beyond the highest published tier, Enterprise is priced by quote. Overage "
        "costs 1.25x the plan's task price and stops at 3x the plan's tasks, so these volumes "
        "need a tier of their own: read the column as an upper-bound extrapolation.",
        f"Make: {f('make_ops_per_webhook')} operations per webhook at the Core plan's "
        f"{usd(price('make_plan'))} for {p['make_plan_ops']:,.0f} operations (Make's own "
        "example), extrapolated the same way.",
        "Not counted: data transfer out (the first 100 GB a month are free; about 1 KB per "
        "contact to ActiveCampaign), KMS requests behind the AWS-managed keys (DynamoDB and "
        "Secrets Manager encryption), retries, dead letters and requeued imports, "
        "IdempotencyTable storage (its items expire within minutes to a day).",
    ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--measured", metavar="FILE",
                        help="JSON object of model figures, named as the flags ('-' or '_')")
    parser.add_argument("--volumes", default=VOLUMES, help="webhooks a month, comma-separated")
    parser.add_argument("--template", default=TEMPLATE, help="the SAM template to read")
    for name, (default, text) in MODEL.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=float,
                            default=argparse.SUPPRESS,
                            help=text + (" (default: template.yaml)" if default is None
                                         else f" (default: {default:g})"))
    args = vars(parser.parse_args())
    params = {n: d for n, (d, _) in MODEL.items() if d is not None}
    params.update(template_defaults(args["template"]))
    if args.get("measured"):
        with open(args["measured"]) as f:
            measured = {k.lstrip("-").replace("-", "_"): v for k, v in json.load(f).items()}
        unknown = sorted(set(measured) - set(MODEL))
        if unknown:
            sys.exit(f"{args['measured']}: unknown figure(s) {', '.join(unknown)}")
        params.update({k: float(v) for k, v in measured.items()})
    params.update({k: v for k, v in args.items() if k in MODEL})
    rows = [estimate(int(v), params) for v in args["volumes"].split(",")]
    if args["json"]:
        print(json.dumps({"params": params, "rows": rows,
                          "prices": {k: {"usd": v, "per": n, "unit": u, "source": s}
                                     for k, (v, n, u, s) in PRICES.items()}}, indent=2))
    else:
        print(markdown(rows, params))


if __name__ == "__main__":
    main()
