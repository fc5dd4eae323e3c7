#!/usr/bin/env python3
"""Writes events/*.json: Lambda Function URL (payload v2) events for every sender and topic,
signed with the secrets in local/secret.json exactly as each sender signs.

    python3 scripts/make_events.py                 # regenerate the committed events/
    python3 scripts/make_events.py --out DIR --now # fresh Stripe timestamps (for live replays)

Function URLs pass JSON bodies as text and base64-encode other content types, as AWS does.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A fixed signing time keeps the committed files stable; tests read it back from the header.
FIXED_STRIPE_TIME = 1767225600  # 2026-01-01T00:00:00Z

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


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def php_json(obj):
    # WooCommerce: wp_json_encode, compact, escaped slashes and \uXXXX for non-ASCII.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def pretty(obj):
    # Stripe pretty-prints its events.
    return json.dumps(obj, indent=2).encode()


# ---- form ----
FORM_TOKEN = route_secret("form")


def form_events():
    urlencoded = b"email=Ada.Lovelace%40Example.com&first_name=Ada&last_name=Lovelace&phone=%2B44+20+7946+0000&company=Analytical+Engines&newsletter=on"
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    parts = [("E-mail", "grace@example.com"), ("Name", "Grace Brewster Hopper"), ("tel", "+1 212 555 0101"), ("Organization", "US Navy")]
    multipart = "".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n" for k, v in parts
    )
    multipart += f"--{boundary}\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n"
    browser = {"content-type": "application/x-www-form-urlencoded", "origin": "https://example.com", "user-agent": "Mozilla/5.0"}
    json_headers = {"content-type": "application/json"}
    return {
        "form-urlencoded": event(f"/webhooks/form?token={FORM_TOKEN}", urlencoded, browser),
        "form-multipart": event(f"/webhooks/form?token={FORM_TOKEN}", multipart.encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}),
        "form-json": event(f"/webhooks/form?token={FORM_TOKEN}", compact({"email": "katherine@example.com", "name": "Katherine Johnson", "phone": "+1 757 555 0199", "company": "NASA"}), json_headers),
        "form-no-email": event(f"/webhooks/form?token={FORM_TOKEN}", compact({"name": "No Email", "message": "Call me"}), json_headers),
        "form-wrong-token": event("/webhooks/form?token=not-the-token", urlencoded, browser),
        "form-missing-token": event("/webhooks/form", urlencoded, browser),
        "form-malformed-json": event(f"/webhooks/form?token={FORM_TOKEN}", b'{"email": "ada@example.com", ', json_headers),
        "form-unsupported-type": event(f"/webhooks/form?token={FORM_TOKEN}", b"email=ada@example.com", {"content-type": "text/plain"}),
        "newsletter-signup": event(
            f"/webhooks/newsletter?token={route_secret('newsletter')}",
            b"your_email=mary%40example.com&your_name=Mary+Jackson&agree=on&source=footer&page=%2Fblog%2Fpost&interests=rockets&interests=math",
            browser,
        ),
    }


# ---- Shopify ----
SHOPIFY_ORDER = {
    "id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "email": "jon@example.com", "contact_email": "jon@example.com", "name": "#9999", "order_number": 1234,
    "browser_ip": "198.51.100.23", "client_details": {"browser_ip": "198.51.100.23", "user_agent": "Mozilla/5.0"},
    "buyer_accepts_marketing": True, "currency": "USD",
    "total_price": "403.00", "subtotal_price": "393.00", "financial_status": "paid",
    "processed_at": "2026-01-01 10:00:00", "test": False, "tags": "vip, wholesale",
    "customer": {"id": 115310627314723954, "email": "jon@example.com", "first_name": "Jon", "last_name": "Snow", "phone": "+16135550135"},
    "billing_address": {"first_name": "Jon", "last_name": "Snow", "company": "Night's Watch", "phone": "+1 613 555 0135", "city": "Castle Black", "country_code": "CA"},
    "shipping_address": {"first_name": "Jon", "last_name": "Snow", "company": None},
    "line_items": [
        {"id": 866550311766439020, "product_id": 632910392, "variant_id": 808950810, "sku": "IPOD2008PINK", "title": "IPod Nano - 8GB", "name": "IPod Nano - 8GB - Pink", "quantity": 1, "price": "199.00", "vendor": "Apple"},
        {"id": 141249953214522974, "product_id": 632910392, "variant_id": 808950811, "sku": "IPOD2008BLACK", "title": "IPod Nano - 8GB", "quantity": 1, "price": "199.00"},
    ],
}
SHOPIFY_CUSTOMER = {
    "id": 706405506930370084, "email": "bob@example.com", "first_name": "Bob", "last_name": "Norman",
    "phone": "+16136120707", "tags": "", "currency": "USD", "state": "disabled",
    "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": "2026-01-01T10:00:00-05:00"},
    "default_address": {"first_name": "Bob", "last_name": "Norman", "company": "Norman Plumbing", "city": "Ottawa", "default": True},
    "addresses": [{"company": "Norman Plumbing"}],
}
SHOPIFY_CHECKOUT = {
    "id": 981820079255243537, "token": "123123123", "email": "abandoned@example.com", "phone": None,
    "buyer_accepts_marketing": False, "abandoned_checkout_url": "https://shop.example/checkouts/123",
    "customer": {"first_name": "Anne", "last_name": "Bonny", "phone": "+15555550100"},
    "billing_address": {"first_name": "Anne", "last_name": "Bonny", "company": "Revenge"},
    "line_items": [{"sku": "MAP-01", "title": "Treasure map", "quantity": 1, "price": "10.00"}],
    "total_price": "10.00", "currency": "USD",
}


def shopify(route, topic, payload, tamper=False, body=None):
    raw = body if body is not None else compact(payload)
    signature = b64_hmac(route_secret(route), raw)
    if tamper:
        raw = raw.replace(b"Snow", b"Stark")
    return event(f"/webhooks/{route}", raw, {
        "content-type": "application/json",
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": signature,
        "x-shopify-shop-domain": "example.myshopify.com",
        "x-shopify-api-version": "2026-07",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "x-shopify-triggered-at": "2026-01-01T10:00:00.000Z",
    })


def shopify_events():
    return {
        "shopify-orders-create": shopify("shopify", "orders/create", SHOPIFY_ORDER),
        "shopify-orders-paid": shopify("shopify", "orders/paid", SHOPIFY_ORDER),
        "shopify-customers-create": shopify("shopify", "customers/create", SHOPIFY_CUSTOMER),
        "shopify-checkouts-create": shopify("shopify", "checkouts/create", SHOPIFY_CHECKOUT),
        "shopify-products-update": shopify("shopify", "products/update", {"id": 632910392, "title": "IPod Nano - 8GB"}),
        "shopify-bad-signature": shopify("shopify", "orders/create", SHOPIFY_ORDER, tamper=True),
        "shopify-malformed": shopify("shopify", "orders/create", None, body=b'{"id": 1, "email": '),
        "shop-orders-paid": shopify("shop", "orders/paid", SHOPIFY_ORDER),
    }


# ---- WooCommerce ----
WC_ORDER = {
    "id": 727, "parent_id": 0, "status": "processing", "currency": "USD", "date_modified_gmt": "2026-01-01T10:00:00",
    "total": "29.35", "customer_id": 0, "customer_ip_address": "192.0.2.44", "customer_note": "",
    "billing": {"first_name": "Renée", "last_name": "Doe", "company": "Doe & Co", "address_1": "969 Market", "city": "San Francisco", "state": "CA", "postcode": "94103", "country": "US", "email": "renee.doe@example.com", "phone": "(555) 555-5555"},
    "shipping": {"first_name": "Renée", "last_name": "Doe", "company": ""},
    "line_items": [{"id": 315, "name": "Woo Single #1", "product_id": 93, "variation_id": 0, "quantity": 2, "sku": "WOO-SINGLE-1", "price": 3}],
    "_links": {"self": [{"href": "https://shop.example/wp-json/wc/v3/orders/727"}]},
}
WC_CUSTOMER = {
    "id": 25, "email": "john.doe@example.com", "first_name": "John", "last_name": "Doe", "username": "john.doe",
    "billing": {"first_name": "John", "last_name": "Doe", "company": "", "email": "john.doe@example.com", "phone": "(555) 555-0000"},
    "shipping": {}, "is_paying_customer": False,
}


def woo(topic, payload, tamper=False):
    raw = php_json(payload)
    signature = b64_hmac(route_secret("woocommerce"), raw)
    if tamper:
        raw = raw.replace(b"29.35", b"0.01")
    resource, _, action = topic.partition(".")
    return event("/webhooks/woocommerce", raw, {
        "content-type": "application/json",
        "user-agent": "WooCommerce/10.3.0 Hookshot (WordPress/6.9)",
        "x-wc-webhook-source": "https://shop.example/",
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-resource": resource,
        "x-wc-webhook-event": action,
        "x-wc-webhook-signature": signature,
        "x-wc-webhook-id": "12",
        "x-wc-webhook-delivery-id": "a6d8c4f1e0b94c5e8f1d2c3b4a5e6f70",
    })


def woo_events():
    updated = dict(WC_ORDER, status="completed", date_modified_gmt="2026-01-02T09:00:00")
    return {
        "woocommerce-order-created": woo("order.created", WC_ORDER),
        "woocommerce-order-updated": woo("order.updated", updated),
        "woocommerce-customer-created": woo("customer.created", WC_CUSTOMER),
        "woocommerce-bad-signature": woo("order.created", WC_ORDER, tamper=True),
        "woocommerce-ping": event("/webhooks/woocommerce", b"webhook_id=12", {
            "content-type": "application/x-www-form-urlencoded",
            "user-agent": "WooCommerce/10.3.0 Hookshot (WordPress/6.9)",
        }),
    }


# ---- Stripe ----
def stripe_event(kind, obj, event_id):
    return {"id": event_id, "object": "event", "api_version": "2026-09-30.clover", "created": FIXED_STRIPE_TIME,
            "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": kind}


STRIPE_CHECKOUT = {
    "id": "cs_test_a1b2c3", "object": "checkout.session", "amount_total": 2000, "currency": "usd", "mode": "payment",
    "payment_status": "paid", "customer": "cus_NffrFeUfNV2Hib", "customer_email": None, "client_reference_id": None,
    "customer_details": {"email": "dorothy@example.com", "name": "Dorothy Vaughan", "phone": "+17575550142",
                         "business_name": "West Computing", "individual_name": None,
                         "address": {"city": "Hampton", "country": "US", "line1": "1 Langley Blvd", "line2": None, "postal_code": "23681", "state": "VA"}},
    "consent": {"promotions": "opt_in", "terms_of_service": None}, "custom_fields": [], "metadata": {},
}
STRIPE_CUSTOMER = {"id": "cus_NffrFeUfNV2Hib", "object": "customer", "email": "jennifer.maxwell@example.com",
                   "name": "Jenny Rosen", "phone": "+15555550123", "address": None, "metadata": {}, "preferred_locales": []}
STRIPE_INVOICE = {
    "id": "in_1MtHbELkdIwHu7ixl4OzzPMv", "object": "invoice", "customer": "cus_NeZwdNtLEOXuvB",
    "customer_email": "invoice.payer@example.com", "customer_name": "Ian Payer", "customer_phone": None,
    "amount_paid": 1500, "currency": "usd", "number": "F1D2-0001",
    "lines": {"object": "list", "data": [{"id": "il_1", "description": "1 × Pro plan (at $15.00 / month)", "quantity": 1, "amount": 1500,
                                          "price": {"id": "price_1Pro", "product": "prod_ProPlan", "unit_amount": 1500}}]},
}


def stripe(payload, at, tamper=False, secret=None):
    raw = pretty(payload)
    signature = hex_hmac(secret or route_secret("stripe"), f"{at}.".encode() + raw)
    if tamper:
        raw = raw.replace(b"dorothy@", b"mallory@")
    return event("/webhooks/stripe", raw, {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "stripe-signature": f"t={at},v1={signature},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
    })


def stripe_events(at):
    no_email = dict(STRIPE_CUSTOMER, email=None, id="cus_noemail")
    return {
        "stripe-checkout-session-completed": stripe(stripe_event("checkout.session.completed", STRIPE_CHECKOUT, "evt_1Checkout"), at),
        "stripe-customer-created": stripe(stripe_event("customer.created", STRIPE_CUSTOMER, "evt_1Customer"), at),
        "stripe-invoice-paid": stripe(stripe_event("invoice.paid", STRIPE_INVOICE, "evt_1Invoice"), at),
        "stripe-customer-no-email": stripe(stripe_event("customer.created", no_email, "evt_1NoEmail"), at),
        "stripe-charge-refunded": stripe(stripe_event("charge.refunded", {"id": "ch_1", "object": "charge"}, "evt_1Refund"), at),
        "stripe-bad-signature": stripe(stripe_event("checkout.session.completed", STRIPE_CHECKOUT, "evt_1Checkout"), at, tamper=True),
        "stripe-rotated-secret": stripe(stripe_event("customer.created", STRIPE_CUSTOMER, "evt_1Rotated"), at, secret="whsec_local_stripe_previous"),
    }


def other_events():
    return {
        "health": event("/health", method="GET"),
        "unknown-route": event("/webhooks/nope", compact({"email": "a@example.com"}), {"content-type": "application/json"}),
        "method-not-allowed": event("/webhooks/shopify", method="GET"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "events"))
    parser.add_argument("--now", action="store_true", help="sign Stripe events with the current time")
    args = parser.parse_args()
    at = int(time.time()) if args.now else FIXED_STRIPE_TIME
    events = {}
    for group in (form_events(), shopify_events(), woo_events(), stripe_events(at), other_events()):
        events.update(group)
    os.makedirs(args.out, exist_ok=True)
    for name, ev in sorted(events.items()):
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(ev, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print(f"wrote {len(events)} events to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
