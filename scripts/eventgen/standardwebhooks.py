"""Standard Webhooks (Svix and others): webhook-id / webhook-timestamp / webhook-signature (or the
svix-* names); signature "v1,<base64 HMAC of id.timestamp.body>" keyed by the base64 part of the
whsec_ secret; the header is a space-separated list. Payload {type, timestamp, data}."""
import base64
import hashlib
import hmac

from . import SECRET, compact, event


def secrets():
    value = SECRET["webhook_secrets"]["standardwebhooks"]
    return value if isinstance(value, list) else [value]


def sign(secret, msg_id, at, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def delivery(payload, msg_id, at, names="webhook", secret=None, extra=None, tamper=False, raw=None, signed_at=None, unsigned=False):
    body = raw if raw is not None else compact(payload)
    ts = signed_at if signed_at is not None else at
    signature = sign(secret or secrets()[0], msg_id, ts, body)
    if extra:
        signature = f"{extra} {signature}"
    if tamper:
        body = body.replace(b"Shepherd.Book@", b"Niska@")
    headers = {"content-type": "application/json", "user-agent": "Svix-Webhooks/1.0",
               f"{names}-id": msg_id, f"{names}-timestamp": str(ts)}
    if not unsigned:
        headers[f"{names}-signature"] = signature
    return event("/webhooks/standardwebhooks", body, headers)


CONTACT_CREATED = {
    "type": "contact.created", "timestamp": "2026-01-01T00:00:00Z",
    "data": {"id": "ct_01HZY", "email": "Shepherd.Book@example.com", "first_name": "Derrial", "last_name": "Book",
             "phone": "+1 555 0199", "company": "Southdown Abbey"},
}
CUSTOMER_CREATED = {
    "type": "customer.created", "timestamp": "2026-01-01T00:00:00Z",
    "data": {"id": "cus_01HZY", "name": "Malcolm Reynolds", "email": "mal@example.com", "phone_number": "+1 555 0100",
             "organization": "Serenity"},
}


def events(at):
    no_email = {"type": "invoice.voided", "timestamp": "2026-01-01T00:00:00Z", "data": {"id": "in_01HZY", "amount": 1200}}
    return {
        "standardwebhooks-contact-created": delivery(CONTACT_CREATED, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at),
        "standardwebhooks-svix-headers": delivery(CUSTOMER_CREATED, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X", at, names="svix"),
        "standardwebhooks-rotated-secret": delivery(
            CONTACT_CREATED, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4Y", at, secret=secrets()[-1],
            extra="v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="),
        "standardwebhooks-bad-signature": delivery(CONTACT_CREATED, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4Z", at, tamper=True),
        "standardwebhooks-missing-signature": delivery(CONTACT_CREATED, "msg_2KWPBgLlAfxdpx2AI54pPJ85f50", at, unsigned=True),
        "standardwebhooks-stale-timestamp": delivery(CONTACT_CREATED, "msg_2KWPBgLlAfxdpx2AI54pPJ85f51", at, signed_at=at - 600),
        "standardwebhooks-no-email": delivery(no_email, "msg_2KWPBgLlAfxdpx2AI54pPJ85f52", at),
        "standardwebhooks-malformed": delivery(None, "msg_2KWPBgLlAfxdpx2AI54pPJ85f53", at, raw=b'{"type":"contact.created","data":'),
    }
