"""Gravity Forms Webhooks add-on: the entry as JSON or form-urlencoded (charset=UTF-8), route token."""
import json
from urllib.parse import urlencode

from . import event, route_secret

TOKEN = route_secret("gravityforms")

# An entry of a form with Name (1), Email (2), Phone (3), Address (4), Consent (5), Company (6).
ENTRY = {
    "id": "1742", "status": "active", "form_id": "3", "ip": "203.0.113.42",
    "source_url": "https://example.com/contact/", "currency": "USD", "post_id": None,
    "date_created": "2026-01-01 10:00:00", "date_updated": "2026-01-01 10:00:00",
    "is_starred": 0, "is_read": 0, "user_agent": "Mozilla/5.0", "payment_status": None,
    "payment_date": None, "payment_amount": None, "payment_method": "", "transaction_id": None,
    "is_fulfilled": None, "created_by": None, "transaction_type": None,
    "1.2": "", "1.3": "Annie", "1.4": "", "1.6": "Easley", "1.8": "",
    "2": "Annie.Easley@Example.com", "3": "(216) 555-0133",
    "4.1": "21000 Brookpark Rd", "4.2": "", "4.3": "Cleveland", "4.4": "OH", "4.5": "44135", "4.6": "United States",
    "5.1": "1", "5.2": "I agree to receive the newsletter.", "5.3": "1",
    "6": "Lewis Research Center",
}


def php_json(obj):
    # json_encode: compact, escaped slashes.
    return json.dumps(obj, separators=(",", ":")).replace("/", "\\/").encode()


def http_build_query(obj):
    # PHP drops nulls; spaces become +.
    return urlencode([(k, "" if v is None else v) for k, v in obj.items() if v is not None]).encode()


def events(at):
    url = f"/webhooks/gravityforms?token={TOKEN}"
    as_json = {"content-type": "application/json", "user-agent": "WordPress/6.9; https://example.com"}
    as_form = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8", "user-agent": "WordPress/6.9; https://example.com"}
    no_email = dict(ENTRY, id="1743")
    no_email["2"] = ""
    return {
        "gravityforms-entry-json": event(url, php_json(ENTRY), as_json),
        "gravityforms-entry-form": event(url, http_build_query(dict(ENTRY, id="1744")), as_form),
        "gravityforms-no-email": event(url, php_json(no_email), as_json),
        "gravityforms-wrong-token": event("/webhooks/gravityforms?token=not-the-token", php_json(ENTRY), as_json),
        # Token valid, JSON cut short.
        "gravityforms-malformed": event(url, php_json(ENTRY)[:-20], as_json),
    }
