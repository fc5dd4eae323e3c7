"""BigCommerce store webhooks: ids only ({scope, producer: "stores/{hash}", hash, data: {type,
id}}), signed with the Standard Webhooks headers keyed by the app's client secret's own bytes.
The order is looked up through BigCommerce's API (the sandbox serves it for the demo)."""
import base64
import hashlib
import hmac

from . import compact, event, route_secret

STORE_HASH = "abc123"


def sign(secret, msg_id, at, body):
    digest = hmac.new(secret.encode(), f"{msg_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def delivery(payload, msg_id, at, secret=None, tamper=False):
    body = compact(payload)
    signature = sign(secret or route_secret("bigcommerce"), msg_id, at, body)
    if tamper:
        body = body.replace(b'"id":100', b'"id":101')
    headers = {"content-type": "application/json", "user-agent": "BigCommerce-Webhooks",
               "webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}
    return event("/webhooks/bigcommerce", body, headers)


def order(order_id, scope="store/order/created"):
    return {"created_at": 1767225600, "store_id": "1025646", "producer": f"stores/{STORE_HASH}", "scope": scope,
            "hash": hashlib.sha1(f"{scope}:{order_id}".encode()).hexdigest(), "data": {"type": "order", "id": order_id}}


def events(at):
    return {
        "bigcommerce-order-created": delivery(order(100), "7d3f0b2c-bc01", at),
        "bigcommerce-order-missing": delivery(order(404), "7d3f0b2c-bc02", at),
        "bigcommerce-bad-signature": delivery(order(100), "7d3f0b2c-bc03", at, tamper=True),
        "bigcommerce-product-updated": delivery({"scope": "store/product/updated", "producer": f"stores/{STORE_HASH}",
                                                 "data": {"type": "product", "id": 7}}, "7d3f0b2c-bc04", at),
    }
