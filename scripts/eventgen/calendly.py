"""Calendly: Calendly-Webhook-Signature t=<unix>,v1=<hex HMAC of "t.body">, compact JSON."""
from . import compact, event, hex_hmac, route_secret

SCHEDULED_EVENT = {
    "uri": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2",
    "name": "15 Minute Meeting", "status": "active",
    "start_time": "2026-01-05T15:00:00.000000Z", "end_time": "2026-01-05T15:15:00.000000Z",
    "event_type": "https://api.calendly.com/event_types/GBGBDCAADAEDCRZ2",
    "location": {"type": "google_conference", "status": "pushed", "join_url": "https://calendar.google.com/meet"},
    "invitees_counter": {"total": 1, "active": 1, "limit": 1},
    "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z",
    "event_memberships": [{"user": "https://api.calendly.com/users/GBGBDCAADAEDCRZ2", "user_email": "host@example.com", "user_name": "Host"}],
    "event_guests": [],
}
INVITEE = {
    "uri": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/FFFFFFFFFFFFFFFF",
    "email": "River.Tam@example.com", "name": "River Tam", "first_name": None, "last_name": None,
    "status": "active", "timezone": "America/New_York", "event": SCHEDULED_EVENT["uri"],
    "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z",
    "text_reminder_number": "+1 404-555-1234",
    "questions_and_answers": [
        {"question": "Company", "answer": "Blue Sun Corporation", "position": 0},
        {"question": "Please share anything that will help prepare for our meeting.", "answer": "Two by two.", "position": 1},
    ],
    "tracking": {"utm_campaign": None, "utm_source": None, "utm_medium": None, "utm_content": None, "utm_term": None, "salesforce_uuid": None},
    "scheduled_event": SCHEDULED_EVENT,
    "cancel_url": "https://calendly.com/cancellations/FFFFFFFFFFFFFFFF",
    "reschedule_url": "https://calendly.com/reschedulings/FFFFFFFFFFFFFFFF",
    "rescheduled": False, "old_invitee": None, "new_invitee": None, "payment": None, "no_show": None,
    "reconfirmation": None, "routing_form_submission": None, "scheduling_method": None, "invitee_scheduled_by": None,
}


def webhook(kind, payload, at):
    return {"created_at": "2026-01-01T00:00:00.000000Z", "created_by": "https://api.calendly.com/users/GBGBDCAADAEDCRZ2",
            "event": kind, "payload": payload}


def signed(body_obj, at, tamper=False, raw=None, unsigned=False):
    body = raw if raw is not None else compact(body_obj)
    signature = hex_hmac(route_secret("calendly"), f"{at}.".encode() + body)
    if tamper:
        body = body.replace(b"River.Tam@", b"Jubal.Early@")
    headers = {"content-type": "application/json", "user-agent": "Calendly-Webhooks"}
    if not unsigned:
        headers["calendly-webhook-signature"] = f"t={at},v1={signature}"
    return event("/webhooks/calendly", body, headers)


def events(at):
    named = dict(INVITEE, uri=INVITEE["uri"].replace("FFFF", "EEEE", 1), email="kaylee@example.com", name="Kaylee Frye",
                 first_name="Kaywinnet Lee", last_name="Frye", text_reminder_number=None, questions_and_answers=[])
    canceled = dict(INVITEE, status="canceled", rescheduled=False,
                    cancellation={"canceled_by": "River Tam", "reason": "Conflict", "canceler_type": "invitee", "created_at": "2026-01-02T00:00:00.000000Z"})
    no_email = dict(INVITEE, uri=INVITEE["uri"].replace("FFFF", "DDDD", 1), email=None)
    return {
        "calendly-invitee-created": signed(webhook("invitee.created", INVITEE, at), at),
        "calendly-invitee-created-names": signed(webhook("invitee.created", named, at), at),
        "calendly-invitee-canceled": signed(webhook("invitee.canceled", canceled, at), at),
        "calendly-bad-signature": signed(webhook("invitee.created", INVITEE, at), at, tamper=True),
        "calendly-missing-signature": signed(webhook("invitee.created", INVITEE, at), at, unsigned=True),
        "calendly-no-email": signed(webhook("invitee.created", no_email, at), at),
        "calendly-malformed": signed(None, at, raw=b'{"event":"invitee.created","payload":'),
    }
