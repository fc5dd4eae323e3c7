"""Stripe: Stripe-Signature t=,v1= over `t.body`, pretty-printed events."""
from . import event, hex_hmac, pretty, route_secret
from . import FIXED_SIGNING_TIME

def stripe_event(kind, obj, event_id):
    return {"id": event_id, "object": "event", "api_version": "2026-09-30.clover", "created": FIXED_SIGNING_TIME,
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


def events(at):
    no_email = dict(STRIPE_CUSTOMER, email=None, id="cus_noemail")
    return {
        "stripe-checkout-session-completed": stripe(stripe_event("checkout.session.completed", STRIPE_CHECKOUT, "evt_1Checkout"), at),
        "stripe-customer-created": stripe(stripe_event("customer.created", STRIPE_CUSTOMER, "evt_1Customer"), at),
        "stripe-invoice-paid": stripe(stripe_event("invoice.paid", STRIPE_INVOICE, "evt_1Invoice"), at),
        "stripe-customer-no-email": stripe(stripe_event("customer.created", no_email, "evt_1NoEmail"), at),
        # Names its customer by id only: the customer is looked up in Stripe's API.
        "stripe-subscription-created": stripe(stripe_event("customer.subscription.created", {
            "id": "sub_1Q8", "object": "subscription", "customer": "cus_Q8subscriber", "status": "active",
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_1", "product": "prod_Pro"}}]}},
            "evt_1Subscription"), at),
        "stripe-charge-refunded": stripe(stripe_event("charge.refunded", {"id": "ch_1", "object": "charge"}, "evt_1Refund"), at),
        "stripe-bad-signature": stripe(stripe_event("checkout.session.completed", STRIPE_CHECKOUT, "evt_1Checkout"), at, tamper=True),
        "stripe-rotated-secret": stripe(stripe_event("customer.created", STRIPE_CUSTOMER, "evt_1Rotated"), at, secret="whsec_local_stripe_previous"),
    }
