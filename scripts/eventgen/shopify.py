"""Shopify: X-Shopify-Hmac-Sha256, base64 HMAC of the raw compact JSON body."""
from . import b64_hmac, compact, event, rest_api, route_secret


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


def events(at):
    return {
        "shopify-orders-create": shopify("shopify", "orders/create", SHOPIFY_ORDER),
        "shopify-orders-paid": shopify("shopify", "orders/paid", SHOPIFY_ORDER),
        "shopify-customers-create": shopify("shopify", "customers/create", SHOPIFY_CUSTOMER),
        "shopify-checkouts-create": shopify("shopify", "checkouts/create", SHOPIFY_CHECKOUT),
        "shopify-products-update": shopify("shopify", "products/update", {"id": 632910392, "title": "IPod Nano - 8GB"}),
        "shopify-bad-signature": shopify("shopify", "orders/create", SHOPIFY_ORDER, tamper=True),
        "shopify-malformed": shopify("shopify", "orders/create", None, body=b'{"id": 1, "email": '),
        "shop-orders-paid": shopify("shop", "orders/paid", SHOPIFY_ORDER),
        "rest-shopify-orders-paid": rest_api(shopify("shopify", "orders/paid", SHOPIFY_ORDER)),
    }
