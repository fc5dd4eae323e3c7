"""WooCommerce: X-WC-Webhook-Signature over PHP-style JSON, and the unsigned ping."""
from . import b64_hmac, event, php_json, route_secret


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


def events(at):
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
