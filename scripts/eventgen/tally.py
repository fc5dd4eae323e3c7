"""Tally: Tally-Signature, base64 HMAC-SHA256 of the raw body, compact JSON.
Payload shape from tally.so/help/webhooks (reference section 16): choice values are option ids."""
from . import b64_hmac, compact, event, route_secret

TEAM_SIZE = [{"id": "5c4e1b5a-3f0e-4f8e-9b1a-0d2c4e6f8a01", "text": "1-10"},
             {"id": "7a9c2e4f-6b8d-4a0c-8e2f-1b3d5f7a9c02", "text": "11-50"},
             {"id": "9e1a3c5e-7f9b-4d1f-a3c5-2e4f6a8c0e03", "text": "51+"}]
INTERESTS = [{"id": "b3d5f7a9-c1e3-4f5a-8b7c-9d1e3f5a7b04", "text": "Analytics"},
             {"id": "d5f7a9c1-e3a5-4b7c-9d1e-3f5a7b9c1d05", "text": "Automation"}]


def tally_event(event_id, response_id, fields):
    return {
        "eventId": event_id,
        "eventType": "FORM_RESPONSE",
        "createdAt": "2026-01-01T10:00:00.000Z",
        "data": {
            "responseId": response_id,
            "submissionId": response_id,
            "respondentId": "3xZ9Wv",
            "formId": "nW8k2P",
            "formName": "Book a demo",
            "createdAt": "2026-01-01T10:00:00.000Z",
            "fields": fields,
        },
    }


FULL_FIELDS = [
    {"key": "question_2ElRjb", "label": "First name", "type": "INPUT_TEXT", "value": "Annie"},
    {"key": "question_xDJv8d", "label": "Last name", "type": "INPUT_TEXT", "value": "Easley"},
    {"key": "question_R0Bz5o", "label": "Work email", "type": "INPUT_EMAIL", "value": "Annie.Easley@Example.com"},
    {"key": "question_oRqevX", "label": "Phone number", "type": "INPUT_PHONE_NUMBER", "value": "+12165550147"},
    {"key": "question_GpLbN5", "label": "Company", "type": "INPUT_TEXT", "value": "NASA Glenn"},
    {"key": "question_O7Q4Zp", "label": "Team size", "type": "MULTIPLE_CHOICE", "value": [TEAM_SIZE[1]["id"]], "options": TEAM_SIZE},
    {"key": "question_VPKQpl", "label": "Interested in", "type": "CHECKBOXES", "value": [INTERESTS[0]["id"]], "options": INTERESTS},
    {"key": f"question_VPKQpl_{INTERESTS[0]['id']}", "label": "Interested in (Analytics)", "type": "CHECKBOXES", "value": True},
    {"key": f"question_VPKQpl_{INTERESTS[1]['id']}", "label": "Interested in (Automation)", "type": "CHECKBOXES", "value": False},
    {"key": "question_Ek0vQ9", "label": "Send me product news", "type": "CHECKBOX", "value": True},
    {"key": "question_hd7Ktq_utm_source", "label": "utm_source", "type": "HIDDEN_FIELDS", "value": "linkedin"},
]


def tally(payload=None, tamper=False, signed=True, body=None):
    raw = body if body is not None else compact(payload)
    headers = {"content-type": "application/json"}
    if signed:
        headers["tally-signature"] = b64_hmac(route_secret("tally"), raw)
    if tamper:
        raw = raw.replace(b"Annie.Easley@", b"mallory@")
    return event("/webhooks/tally", raw, headers)


def events(at):
    full = tally_event("7f3c2a91-5b6e-4d0a-9c1e-2f8b4d6a0e13", "mOzKqd", FULL_FIELDS)
    no_email = tally_event("0b8d6f4a-2c1e-4a9b-8d7f-6e5c4b3a2d14", "wLdRzX", [
        {"key": "question_2ElRjb", "label": "First name", "type": "INPUT_TEXT", "value": "Anonymous"},
        {"key": "question_m9Bq3r", "label": "Feedback", "type": "TEXTAREA", "value": "Great demo, no follow-up please."},
    ])
    return {
        "tally-form-response": tally(full),
        "tally-no-email": tally(no_email),
        "tally-bad-signature": tally(full, tamper=True),
        "tally-missing-signature": tally(full, signed=False),
        "tally-malformed": tally(body=b'{"eventId":"7f3c2a91-5b6e-4d0a-9c1e-2f8b4d6a0e13","eventType":"FORM_RESPONSE","data":'),
    }
