"""Shared helpers for the events generator: Function URL (payload v2) events, signatures in
each sender's encoding, and the JSON styles senders use. One module per sender beside this one
defines `events(at)` returning {file name: event}.
"""
import base64
import hashlib
import hmac
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A fixed signing time keeps the committed files stable; tests read it back from the header.
FIXED_SIGNING_TIME = 1767225600  # 2026-01-01T00:00:00Z

with open(os.path.join(ROOT, "local", "secret.json")) as f:
    SECRET = json.load(f)


def route_secret(route):
    value = SECRET["webhook_secrets"][route]
    return value[0] if isinstance(value, list) else value


def b64_hmac(key, msg):
    return base64.b64encode(hmac.new(key.encode(), msg, hashlib.sha256).digest()).decode()


def hex_hmac(key, msg):
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def event(path, body=b"", headers=None, method="POST"):
    raw_path, _, query = path.partition("?")
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    headers.setdefault("host", "abcdefghij.lambda-url.us-east-1.on.aws")
    headers.setdefault("x-forwarded-proto", "https")
    content_type = headers.get("content-type", "")
    as_text = content_type == "" or content_type.startswith(("application/json", "text/"))
    ev = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": headers.get("user-agent", "ac-webhook-sync-events"),
            },
            "requestId": "11111111-2222-3333-4444-555555555555",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }
    if body:
        if as_text:
            ev["body"] = body.decode()
        else:
            ev["body"] = base64.b64encode(body).decode()
            ev["isBase64Encoded"] = True
    return ev


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def php_json(obj):
    # WooCommerce: wp_json_encode, compact, escaped slashes and \uXXXX for non-ASCII.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def pretty(obj):
    # Stripe pretty-prints its events.
    return json.dumps(obj, indent=2).encode()
