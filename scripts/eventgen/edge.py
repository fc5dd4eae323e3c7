"""Requests about the edge itself: health, unknown route, wrong method."""
from . import compact, event


def events(at):
    return {
        "health": event("/health", method="GET"),
        "unknown-route": event("/webhooks/nope", compact({"email": "a@example.com"}), {"content-type": "application/json"}),
        "method-not-allowed": event("/webhooks/shopify", method="GET"),
    }
