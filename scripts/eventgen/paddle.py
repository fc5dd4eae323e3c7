"""Paddle Billing: Paddle-Signature `ts=<unix>;h1=<hex HMAC-SHA256 of "ts:body">`, compact JSON.
Payload shapes from the notification mocks of PaddleHQ/paddle-node-sdk (reference section 13)."""
from . import compact, event, hex_hmac, route_secret

CUSTOMER = {
    "id": "ctm_01jgzb7kx0a2c4e6g8j0k2m4p6", "name": "Christine Darden", "email": "Christine.Darden@Example.com",
    "locale": "en", "status": "active", "custom_data": {"crm_reference": "CD-1967"}, "marketing_consent": True,
    "created_at": "2026-01-01T09:59:58.412Z", "updated_at": "2026-01-01T09:59:58.412Z", "import_meta": None,
}
TRANSACTION = {
    "id": "txn_01jgzbb3q8w6e4r2t0y8u6i4o2", "status": "completed", "origin": "web", "currency_code": "USD",
    "customer_id": "ctm_01jgzb7kx0a2c4e6g8j0k2m4p6", "address_id": "add_01jgzb8a2s4d6f8g0h2j4k6l8m", "business_id": None,
    "subscription_id": None, "invoice_id": None, "invoice_number": None, "discount_id": None, "custom_data": None,
    "collection_mode": "automatic", "billing_details": None, "billing_period": None,
    "items": [{"price": {"id": "pri_01jgz9n2b4v6c8x0z2a4s6d8f0", "product_id": "pro_01jgz9m1q3w5e7r9t1y3u5i7o9",
                         "name": "Annual plan", "description": "Annual plan", "status": "active", "tax_mode": "account_setting",
                         "billing_cycle": {"interval": "year", "frequency": 1}, "trial_period": None,
                         "unit_price": {"amount": "24000", "currency_code": "USD"}, "custom_data": None},
               "quantity": 1}],
    "details": {"totals": {"subtotal": "24000", "tax": "0", "discount": "0", "total": "24000", "grand_total": "24000", "currency_code": "USD"},
                "line_items": [{"id": "txnitm_01jgzbb3r0t2y4u6i8o0p2a4s6", "price_id": "pri_01jgz9n2b4v6c8x0z2a4s6d8f0", "quantity": 1,
                                "totals": {"subtotal": "24000", "tax": "0", "discount": "0", "total": "24000"},
                                "product": {"id": "pro_01jgz9m1q3w5e7r9t1y3u5i7o9", "name": "Trajectory Pro", "status": "active"}}]},
    "payments": [{"amount": "24000", "status": "captured", "method_details": {"type": "card", "card": {"type": "visa", "last4": "4242"}}}],
    "checkout": {"url": "https://example.com/pay?_ptxn=txn_01jgzbb3q8w6e4r2t0y8u6i4o2"},
    "created_at": "2026-01-01T09:58:40.118Z", "updated_at": "2026-01-01T10:00:01.902Z", "billed_at": "2026-01-01T10:00:01.512Z",
}


def notification(event_type, event_id, notification_id, data):
    return {"event_id": event_id, "event_type": event_type, "occurred_at": "2026-01-01T10:00:00.000000Z",
            "notification_id": notification_id, "data": data}


def paddle(at, payload=None, tamper=False, signed=True, body=None, secrets=None):
    raw = body if body is not None else compact(payload)
    headers = {"content-type": "application/json"}
    if signed:
        h1 = [hex_hmac(s, f"{at}:".encode() + raw) for s in (secrets or [route_secret("paddle")])]
        headers["paddle-signature"] = f"ts={at};" + ";".join(f"h1={h}" for h in h1)
    if tamper:
        raw = raw.replace(b"Christine.Darden@", b"mallory@")
    return event("/webhooks/paddle", raw, headers)


def events(at):
    customer = notification("customer.created", "evt_01jgzb7m3k8e5v2c4x6n9p1q3r", "ntf_01jgzb7m5t2w4y6a8c0e2g4j6k", CUSTOMER)
    no_email = notification("customer.created", "evt_01jgzc0a1s3d5f7g9h1j3k5l7m", "ntf_01jgzc0a3q5w7e9r1t3y5u7i9o",
                            dict(CUSTOMER, id="ctm_01jgzc09z8x6c4v2b0n8m6q4w2", email=None, name=None))
    transaction = notification("transaction.completed", "evt_01jgzbb4a2s4d6f8g0h2j4k6l8", "ntf_01jgzbb4c6v8b0n2m4q6w8e0r2", TRANSACTION)
    return {
        "paddle-customer-created": paddle(at, customer),
        "paddle-transaction-completed": paddle(at, transaction),
        "paddle-no-email": paddle(at, no_email),
        "paddle-bad-signature": paddle(at, customer, tamper=True),
        "paddle-missing-signature": paddle(at, customer, signed=False),
        "paddle-malformed": paddle(at, body=b'{"event_id":"evt_01jgzb7m3k8e5v2c4x6n9p1q3r","event_type":"customer.created","data":{'),
        # Signed an hour before it arrives: outside the route's replay window (default 300 s).
        "paddle-stale-timestamp": paddle(at - 3600, customer),
        # During a rotation: one h1 from a retired secret, one from the route's previous secret.
        "paddle-rotated-secret": paddle(at, customer, secrets=["pdl_ntfset_retired_elsewhere", "pdl_ntfset_local_paddle_previous"]),
    }
