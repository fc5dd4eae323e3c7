"""Squarespace Commerce webhook subscriptions: ids only ({id, websiteId, subscriptionId, topic,
createdOn, data: {orderId}}), signed with Squarespace-Signature, hex HMAC-SHA256 of the body
keyed by the hex-decoded subscription secret. The order is looked up in the Commerce API."""
import hashlib
import hmac

from . import compact, event, route_secret


def delivery(payload, secret=None, tamper=False):
    body = compact(payload)
    key = bytes.fromhex(secret or route_secret("squarespace"))
    signature = hmac.new(key, body, hashlib.sha256).hexdigest()
    if tamper:
        body = body.replace(b"order.create", b"order.update")
    headers = {"content-type": "application/json", "user-agent": "Squarespace/1.0", "squarespace-signature": signature}
    return event("/webhooks/squarespace", body, headers)


def notification(order_id, topic="order.create"):
    return {"id": "5f0b8b1c2d3e4f5a6b7c8d9e", "websiteId": "5c3d2e1f0a9b8c7d6e5f4a3b",
            "subscriptionId": "c3c7f3a0-1b2c-4d5e-8f90-a1b2c3d4e5f6", "topic": topic,
            "createdOn": "2026-01-01T00:00:00.000Z", "data": {"orderId": order_id}}


def events(at):
    return {
        "squarespace-order-create": delivery(notification("5f0b8b1c2d3e4f5a6b7c8d9f")),
        "squarespace-bad-signature": delivery(notification("5f0b8b1c2d3e4f5a6b7c8d9f"), tamper=True),
    }
