"""Lemon Squeezy: X-Signature, hex HMAC-SHA256 of the raw body; topic in X-Event-Name.
JSON:API payloads from docs.lemonsqueezy.com/help/webhooks (reference section 14). The body is
encoded like PHP's json_encode (escaped slashes): an assumption, the docs do not say."""
from . import event, hex_hmac, php_json, route_secret

ORDER = {
    "type": "orders", "id": "2204867",
    "attributes": {
        "store_id": 41503, "customer_id": 2961523, "identifier": "89b36d62-4f5b-4b5f-9a1e-4c6b3e9f0d21",
        "order_number": 4150301, "user_name": "Evelyn Boyd Granville", "user_email": "Evelyn.Granville@Example.com",
        "currency": "USD", "currency_rate": "1.0000", "subtotal": 4900, "discount_total": 0, "tax": 0, "total": 4900,
        "subtotal_usd": 4900, "discount_total_usd": 0, "tax_usd": 0, "total_usd": 4900, "tax_name": None, "tax_rate": "0.00",
        "status": "paid", "status_formatted": "Paid", "refunded": False, "refunded_at": None,
        "subtotal_formatted": "$49.00", "discount_total_formatted": "$0.00", "tax_formatted": "$0.00", "total_formatted": "$49.00",
        "first_order_item": {"id": 1840112, "order_id": 2204867, "product_id": 187345, "variant_id": 231877, "price_id": 402211,
                             "product_name": "Orbit Calculator", "variant_name": "Lifetime license", "price": 4900, "quantity": 1,
                             "created_at": "2026-01-01T10:00:00.000000Z", "updated_at": "2026-01-01T10:00:00.000000Z", "test_mode": False},
        "urls": {"receipt": "https://app.lemonsqueezy.com/my-orders/89b36d62-4f5b-4b5f-9a1e-4c6b3e9f0d21?signature=8847fff02e1bfb0c7c43ff1cdf1b1657a8eed2029413692663b86859208c9f42"},
        "created_at": "2026-01-01T10:00:00.000000Z", "updated_at": "2026-01-01T10:00:00.000000Z", "test_mode": False,
    },
    "relationships": {"store": {"links": {"related": "https://api.lemonsqueezy.com/v1/orders/2204867/store",
                                          "self": "https://api.lemonsqueezy.com/v1/orders/2204867/relationships/store"}}},
    "links": {"self": "https://api.lemonsqueezy.com/v1/orders/2204867"},
}
SUBSCRIPTION = {
    "type": "subscriptions", "id": "880123",
    "attributes": {
        "store_id": 41503, "customer_id": 2961977, "order_id": 2204901, "order_item_id": 1840150, "product_id": 187400,
        "variant_id": 231990, "product_name": "Orbit Cloud", "variant_name": "Monthly", "user_name": "Mae Jemison",
        "user_email": "Mae.Jemison@Example.com", "status": "active", "status_formatted": "Active", "card_brand": "visa",
        "card_last_four": "4242", "pause": None, "cancelled": False, "trial_ends_at": None, "billing_anchor": 1,
        "first_subscription_item": {"id": 501223, "subscription_id": 880123, "price_id": 402300, "quantity": 1, "is_usage_based": False,
                                    "created_at": "2026-01-01T10:00:00.000000Z", "updated_at": "2026-01-01T10:00:00.000000Z"},
        "urls": {"update_payment_method": "https://orbit.lemonsqueezy.com/subscription/880123/payment-details?expires=1767312000&signature=3b1d",
                 "customer_portal": "https://orbit.lemonsqueezy.com/billing?expires=1767312000&test_mode=0&user=2961977&signature=9c4e"},
        "renews_at": "2026-02-01T10:00:00.000000Z", "ends_at": None,
        "created_at": "2026-01-01T10:00:00.000000Z", "updated_at": "2026-01-01T10:00:00.000000Z", "test_mode": False,
    },
    "links": {"self": "https://api.lemonsqueezy.com/v1/subscriptions/880123"},
}


def ls_event(name, data):
    return {"meta": {"test_mode": False, "event_name": name, "custom_data": {"campaign": "winter"},
                     "webhook_id": "6a1f9d0e-3b2c-4d5e-8f7a-9b0c1d2e3f40"}, "data": data}


def lemonsqueezy(topic, payload=None, tamper=False, signed=True, body=None):
    raw = body if body is not None else php_json(payload)
    headers = {"content-type": "application/json", "x-event-name": topic}
    if signed:
        headers["x-signature"] = hex_hmac(route_secret("lemonsqueezy"), raw)
    if tamper:
        raw = raw.replace(b"Evelyn.Granville@", b"mallory@")
    return event("/webhooks/lemonsqueezy", raw, headers)


def events(at):
    order = ls_event("order_created", ORDER)
    refunded_attrs = dict(ORDER["attributes"], status="refunded", status_formatted="Refunded", refunded=True,
                          refunded_at="2026-01-02T09:00:00.000000Z")
    refunded = ls_event("order_refunded", dict(ORDER, attributes=refunded_attrs))
    no_email_attrs = dict(ORDER["attributes"], user_email=None, user_name=None, identifier="0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f")
    no_email = ls_event("order_created", dict(ORDER, id="2204999", attributes=no_email_attrs))
    return {
        "lemonsqueezy-order-created": lemonsqueezy("order_created", order),
        "lemonsqueezy-subscription-created": lemonsqueezy("subscription_created", ls_event("subscription_created", SUBSCRIPTION)),
        "lemonsqueezy-order-refunded": lemonsqueezy("order_refunded", refunded),
        "lemonsqueezy-no-email": lemonsqueezy("order_created", no_email),
        "lemonsqueezy-bad-signature": lemonsqueezy("order_created", order, tamper=True),
        "lemonsqueezy-missing-signature": lemonsqueezy("order_created", order, signed=False),
        "lemonsqueezy-malformed": lemonsqueezy("order_created", body=b'{"meta":{"event_name":"order_created"},"data":{"type":"orders",'),
    }
