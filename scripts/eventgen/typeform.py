"""Typeform: Typeform-Signature `sha256=<base64 HMAC-SHA256 of the raw body>`, compact JSON.
Payload shape from typeform.com/developers/webhooks (reference section 4)."""
from . import b64_hmac, compact, event, route_secret


def field(field_id, kind, ref, title):
    return {"id": field_id, "type": kind, "ref": ref, "title": title, "properties": {}}


FIELDS = [
    field("JwWggjAKtOkA", "short_text", "first_name", "What's your first name?"),
    field("KoJxDM3c6x8h", "short_text", "last_name", "And your last name?"),
    field("SMEUb7VJz92Q", "email", "email", "Your email address"),
    field("PNe8ZKBK8C2Q", "phone_number", "phone", "A phone number we can reach you on"),
    field("gFFf3xAkJKsr", "short_text", "company", "Where do you work?"),
    field("k6TP9oLGgHjl", "multiple_choice", "role", "What's your role?"),
    field("RUqkXSeXBXSd", "legal", "marketing_consent", "May we email you about the launch?"),
]


def answer(kind, value, index, field_type=None):
    f = FIELDS[index]
    return {"type": kind, kind: value, "field": {"id": f["id"], "type": field_type or f["type"], "ref": f["ref"]}}


def response(event_id, token, answers, event_type="form_response", at_iso="2026-01-01T10:00:00Z"):
    return {
        "event_id": event_id,
        "event_type": event_type,
        "form_response": {
            "form_id": "lT4Z3j",
            "token": token,
            "landed_at": "2026-01-01T09:57:41Z",
            "submitted_at": at_iso,
            "hidden": {"utm_source": "newsletter", "utm_campaign": "launch-2026"},
            "calculated": {"score": 0},
            "variables": [{"key": "score", "type": "number", "number": 0}],
            "definition": {"id": "lT4Z3j", "title": "Product waitlist", "fields": FIELDS},
            "answers": answers,
            "ending": {"id": "DeFaUlT", "ref": "default_tys"},
        },
    }


FULL_ANSWERS = [
    answer("text", "Margaret", 0),
    answer("text", "Hamilton", 1),
    answer("email", "Margaret.Hamilton@Example.com", 2),
    answer("phone_number", "+16175550123", 3),
    answer("text", "MIT Instrumentation Lab", 4),
    answer("choice", {"id": "m2Wq9Jd6xL0a", "label": "Engineering", "ref": "engineering"}, 5),
    answer("boolean", True, 6),
]


def typeform(payload=None, tamper=False, signed=True, body=None):
    raw = body if body is not None else compact(payload)
    headers = {"content-type": "application/json"}
    if signed:
        headers["typeform-signature"] = "sha256=" + b64_hmac(route_secret("typeform"), raw)
    if tamper:
        raw = raw.replace(b"Margaret.Hamilton@", b"mallory@")
    return event("/webhooks/typeform", raw, headers)


def events(at):
    full = response("01JGZ4W6S3M8Q2T5V7X9Z1B3D5", "a3a12ec67a1365927098a606107fac15", FULL_ANSWERS)
    partial = response("01JGZ4T2R8K4N6P8Q0S2U4W6Y8", "b7f0c2d9e14a5b6c7d8e9f0a1b2c3d4e",
                       FULL_ANSWERS[:2], event_type="form_response_partial")
    no_email = response("01JGZ4X9B1D3F5H7J9K1M3N5P7", "c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6",
                        [answer("text", "Just browsing", 4), answer("boolean", False, 6)])
    return {
        "typeform-form-response": typeform(full),
        "typeform-form-response-partial": typeform(partial),
        "typeform-no-email": typeform(no_email),
        "typeform-bad-signature": typeform(full, tamper=True),
        "typeform-missing-signature": typeform(full, signed=False),
        "typeform-malformed": typeform(body=b'{"event_id":"01JGZ4W6S3M8Q2T5V7X9Z1B3D5","event_type":"form_response","form_response":{'),
    }
