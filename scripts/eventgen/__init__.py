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


REST_HOST = "abcdefghij.execute-api.us-east-1.amazonaws.com"
ALB_HOST = "webhooks-1234567890.us-east-1.elb.amazonaws.com"


def _display(name):
    return "-".join(part.capitalize() for part in name.split("-"))


def rest_api(ev, stage="prod"):
    """The same request through an API Gateway REST API (proxy integration, `{route}` resource,
    a named stage): display-case headers, decoded query parameters, no raw query string."""
    from urllib.parse import parse_qsl
    path = ev["rawPath"]
    headers = {_display(k): v for k, v in ev["headers"].items()}
    headers["Host"] = REST_HOST
    query = parse_qsl(ev["rawQueryString"], keep_blank_values=True)
    multi = {}
    for key, value in query:
        multi.setdefault(key, []).append(value)
    method = ev["requestContext"]["http"]["method"]
    return {
        "resource": "/webhooks/{route}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": {"route": path.rsplit("/", 1)[-1]},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "domainName": REST_HOST,
            "domainPrefix": "abcdefghij",
            "extendedRequestId": "AbCdEfGhIjKlMnO=",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": ev["requestContext"]["http"]["userAgent"]},
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": "11111111-2222-3333-4444-555555555555",
            "requestTime": "01/Jan/2026:00:00:00 +0000",
            "requestTimeEpoch": 1767225600000,
            "resourceId": "a1b2c3",
            "resourcePath": "/webhooks/{route}",
            "stage": stage,
        },
        "body": ev.get("body"),
        "isBase64Encoded": ev["isBase64Encoded"],
    }


def alb(ev):
    """The same request through an Application Load Balancer target group: query parameters as
    sent (not decoded), the load balancer's X-Forwarded-* headers."""
    from urllib.parse import parse_qsl
    headers = dict(ev["headers"])
    headers.update({"host": ALB_HOST, "x-forwarded-for": "203.0.113.7", "x-forwarded-port": "443",
                    "x-forwarded-proto": "https", "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678"})
    query = {}
    for pair in filter(None, ev["rawQueryString"].split("&")):
        key, _, value = pair.partition("=")
        query[key] = value
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/webhooks/6d0ecf831eec9f09"}},
        "httpMethod": ev["requestContext"]["http"]["method"],
        "path": ev["rawPath"],
        "queryStringParameters": query,
        "headers": headers,
        "body": ev.get("body", ""),
        "isBase64Encoded": ev["isBase64Encoded"],
    }


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def php_json(obj):
    # WooCommerce: wp_json_encode, compact, escaped slashes and \uXXXX for non-ASCII.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def pretty(obj):
    # Stripe pretty-prints its events.
    return json.dumps(obj, indent=2).encode()
