"""Gumroad Ping: form-urlencoded as HTTParty writes it (%20 spaces, encoded brackets), route token."""
from urllib.parse import quote

from . import compact, event, route_secret

TOKEN = route_secret("gumroad")
FORM = {"content-type": "application/x-www-form-urlencoded"}


def to_params(params):
    # HTTParty::HashConversions.to_params with ERB::Util.url_encode: everything but
    # [A-Za-z0-9_.-~] is percent-encoded (spaces as %20); nested hashes become key[child].
    pairs = []
    for key, value in params.items():
        if isinstance(value, dict):
            pairs += [(f"{key}[{k}]", v) for k, v in value.items()]
        else:
            pairs.append((key, value))
    text = lambda v: "true" if v is True else "false" if v is False else "" if v is None else str(v)
    return "&".join(f"{quote(k, safe='')}={quote(text(v), safe='')}" for k, v in pairs).encode()


SALE = {
    "seller_id": "eXsC3vOpVqbQ8s0ZPtw6Ng==", "product_id": "Hx2k1Ipsc8OpBRt1NGYW-A==",
    "product_name": "The Modern Prometheus", "permalink": "prometheus",
    "product_permalink": "https://shelley.gumroad.com/l/prometheus", "short_product_id": "prometheus",
    "email": "Mary.Shelley@Example.com", "price": 1500, "gumroad_fee": 150, "currency": "usd",
    "quantity": 1, "discover_fee_charged": False, "can_contact": True, "referrer": "direct",
    "card": {"visual": "**** **** **** 4242", "type": "visa", "bin": None, "expiry_month": None, "expiry_year": None},
    "order_number": 524459935, "sale_id": "FQ3q4Hs5kt4o3mF6xOaDfA==", "sale_timestamp": "2026-01-01T10:00:00Z",
    "full_name": "Mary Wollstonecraft Shelley", "purchaser_id": "7429813491263",
    "variants": {"Edition": "Annotated"},
    "Company": "Lackington Press", "custom_fields": {"Company": "Lackington Press"},
    "ip_country": "United Kingdom", "is_gift_receiver_purchase": False,
    "refunded": False, "disputed": False, "dispute_won": False,
}


def events(at):
    url = f"/webhooks/gumroad?token={TOKEN}"
    test_ping = dict(SALE, email="percy@example.com", full_name="Percy Bysshe Shelley", sale_id="dGVzdHBpbmc=", test=True)
    del test_ping["Company"], test_ping["custom_fields"], test_ping["variants"]
    refund = dict(SALE, resource_name="refund", refunded=True)
    no_email = dict(SALE, email="", full_name="Anonymous Buyer")
    return {
        "gumroad-sale": event(url, to_params(SALE), FORM),
        "gumroad-test-ping": event(url, to_params(test_ping), FORM),
        "gumroad-refund": event(url, to_params(refund), FORM),
        "gumroad-no-email": event(url, to_params(no_email), FORM),
        "gumroad-wrong-token": event("/webhooks/gumroad?token=not-the-token", to_params(SALE), FORM),
        # Token valid, body not UTF-8.
        "gumroad-malformed": event(url, b"email=mary%40example.com&full_name=Mary\xff\xfe", FORM),
    }
