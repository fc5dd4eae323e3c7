"""WPForms Webhooks add-on: user-mapped keys as JSON or form-urlencoded, route token (its signature is unverifiable)."""
import json
from urllib.parse import urlencode

from . import event, hex_hmac, route_secret

TOKEN = route_secret("wpforms")

# Keys as a site owner would map them in the webhook's Request Body.
MAPPED = {
    "email": "Dorothy.Vaughan@Example.com", "first_name": "Dorothy", "last_name": "Vaughan",
    "phone": "(757) 555-0142", "company": "West Area Computing",
    "address": "1 Langley Blvd||Hampton||VA||23681||United States", "interests": "FORTRAN||Management",
}


def wp_json(obj):
    # wp_json_encode: compact, escaped slashes.
    return json.dumps(obj, separators=(",", ":")).replace("/", "\\/").encode()


def headers(content_type, raw, at):
    # WPForms signs with a secret it never shows; the route ignores the header.
    return {
        "content-type": content_type,
        "user-agent": "wpforms-webhooks/1.4.0",
        "x-wpforms-webhook-id": "1",
        "x-wpforms-webhook-signature": f"t={at},v={hex_hmac('unknowable-wpforms-secret', str(at).encode() + b'.' + raw)}",
    }


def events(at):
    url = f"/webhooks/wpforms?token={TOKEN}"
    as_json = wp_json(MAPPED)
    as_form = urlencode(MAPPED).encode()
    no_email = wp_json({"first_name": "No", "last_name": "Email", "message": "Call me"})
    broken = as_json[:-10]
    json_type = "application/json; charset=utf-8"
    form_type = "application/x-www-form-urlencoded; charset=utf-8"
    return {
        "wpforms-json": event(url, as_json, headers(json_type, as_json, at)),
        "wpforms-form": event(url, as_form, headers(form_type, as_form, at)),
        "wpforms-no-email": event(url, no_email, headers(json_type, no_email, at)),
        "wpforms-wrong-token": event("/webhooks/wpforms?token=not-the-token", as_json, headers(json_type, as_json, at)),
        # Token valid, JSON cut short.
        "wpforms-malformed": event(url, broken, headers(json_type, broken, at)),
        # WPForms' default method is GET with the fields in the query: answered 405, use POST.
        "wpforms-get-method": event(f"{url}&{urlencode(MAPPED)}", method="GET", headers={"user-agent": "wpforms-webhooks/1.4.0"}),
    }
