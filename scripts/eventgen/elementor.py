"""Elementor Pro form Webhook action: form-urlencoded (http_build_query), simple and advanced mode, route token."""
from urllib.parse import urlencode

from . import event, route_secret

TOKEN = route_secret("elementor")
HEADERS = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8", "user-agent": "WordPress/6.9; https://example.com"}


def http_build_query(obj, prefix=None):
    # PHP's http_build_query: nested arrays as key[child], spaces as +, true → 1, false → 0.
    pairs = []
    for key, value in obj.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs += http_build_query(value, name)
        elif isinstance(value, list):
            pairs += http_build_query(dict(enumerate(value)), name)
        elif value is not None:
            pairs.append((name, "1" if value is True else "0" if value is False else str(value)))
    return pairs


def body(obj):
    return urlencode(http_build_query(obj)).encode()


SIMPLE = {
    "Name": "Mary Jackson", "Email": "Mary.Jackson@Example.com", "Phone": "+1 757 555 0110",
    "Company": "Langley Research", "Newsletter": "on",
    "Date": "January 1, 2026", "Time": "10:00 am", "Page URL": "https://example.com/contact/",
    "User Agent": "Mozilla/5.0", "Remote IP": "203.0.113.51", "Powered by": "Elementor",
    "form_id": "7f3a2b1", "form_name": "Contact",
}


def field(id, type, title, value, required=False):
    return {"id": id, "type": type, "title": title, "value": ", ".join(value) if isinstance(value, list) else value,
            "raw_value": value, "required": required}


ADVANCED = {
    "form": {"id": "9c1d2e3", "name": "Callback request"},
    "fields": {
        "name": field("name", "text", "Full name", "Christine Darden", True),
        "email": field("email", "email", "Work email", "Christine.Darden@Example.com", True),
        "field_4b2a": field("field_4b2a", "tel", "Mobile", "+1 757 555 0123"),
        "company": field("company", "text", "Organisation", "NASA Langley"),
        "topics": field("topics", "checkbox", "Topics", ["Aerodynamics", "Sonic boom"]),
        "gdpr": field("gdpr", "acceptance", "", "on"),
    },
    "meta": {
        "date": {"title": "Date", "value": "January 1, 2026"},
        "page_url": {"title": "Page URL", "value": "https://example.com/callback/"},
        "remote_ip": {"title": "Remote IP", "value": "203.0.113.52"},
    },
}


def events(at):
    url = f"/webhooks/elementor?token={TOKEN}"
    no_email = {k: v for k, v in SIMPLE.items() if k != "Email"}
    return {
        "elementor-simple": event(url, body(SIMPLE), HEADERS),
        "elementor-advanced": event(url, body(ADVANCED), HEADERS),
        "elementor-no-email": event(url, body(no_email), HEADERS),
        "elementor-wrong-token": event("/webhooks/elementor?token=not-the-token", body(SIMPLE), HEADERS),
        # Token valid, body not UTF-8.
        "elementor-malformed": event(url, b"Name=Mary&Email=\xc3\x28", HEADERS),
    }
