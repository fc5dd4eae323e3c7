"""Wix: app webhooks (the body is a JWT signed RS256 with the app's key; here the test key
pair of local/) and the site Automations action "Send via webhook" (route token)."""
import base64
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from . import ROOT, compact, event, route_secret

AUTOMATIONS_TOKEN = route_secret("wixautomations")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256(claims, key_path=os.path.join(ROOT, "local", "wix-app-private-key.pem")):
    """A compact JWT as Wix signs it (PKCS#1 v1.5 with SHA-256: deterministic, so the
    committed files are stable)."""
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    signing_input = f"{b64url(json.dumps({'alg': 'RS256', 'typ': 'JWT'}, separators=(',', ':')).encode())}." \
                    f"{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def contact_event(event_type, event_id, wrapper, entity, at):
    """Wix's nesting: the event and the envelope travel as JSON text inside the claims."""
    inner = {"id": event_id, "entityFqdn": "wix.contacts.v4.contact", "slug": event_type.rsplit("_", 1)[-1],
             "entityId": entity["id"], wrapper[0]: {wrapper[1]: entity}, "eventTime": "2026-01-01T00:00:00.000Z"}
    envelope = {"data": json.dumps(inner), "eventType": f"wix.contacts.v4.{event_type}",
                "instanceId": "6a1b7e0c-2b4f-4c8e-9a53-1f0c7d2e9b11",
                "identity": json.dumps({"identityType": "ANONYMOUS_VISITOR", "anonymousVisitorId": "v-1"})}
    return {"data": json.dumps(envelope), "iat": at}


AMELIA = {
    "id": "2cf5b4b1-3b4d-4a0e-9f0e-7c1d2b3a4f5e", "revision": 1,
    "primaryInfo": {"email": "amelia.earhart@example.com", "phone": "+1 555 0137"},
    "primaryEmail": {"email": "amelia.earhart@example.com", "subscriptionStatus": "SUBSCRIBED",
                     "deliverabilityStatus": "NOT_SET"},
    "info": {"name": {"first": "Amelia", "last": "Earhart"}, "company": "Ninety-Nines",
             "emails": {"items": [{"id": "e-1", "tag": "MAIN", "email": "amelia.earhart@example.com", "primary": True}]},
             "phones": {"items": [{"id": "p-1", "tag": "MOBILE", "phone": "+1 555 0137", "primary": True}]}},
}


def events(at):
    jwt = {"content-type": "text/plain", "user-agent": "Wix"}
    created = rs256(contact_event("contact_created", "b2d7f1d0-0001", ("createdEvent", "entity"), AMELIA, at))
    updated = rs256(contact_event("contact_updated", "b2d7f1d0-0002", ("updatedEvent", "currentEntity"),
                                  {**AMELIA, "revision": 2}, at))
    no_email = {k: v for k, v in AMELIA.items() if k not in ("primaryInfo", "primaryEmail")}
    no_email = {**no_email, "info": {"name": AMELIA["info"]["name"]}}
    header, claims, signature = created.split(".")
    forged_claims = b64url(json.dumps(contact_event("contact_created", "b2d7f1d0-0009", ("createdEvent", "entity"),
                                                    {**AMELIA, "primaryInfo": {"email": "mallory@example.com"}}, at),
                                      separators=(",", ":")).encode())
    automations = {"content-type": "application/json", "user-agent": "Wix-Automations"}
    return {
        "wix-contact-created": event("/webhooks/wix", created.encode(), jwt),
        "wix-contact-updated": event("/webhooks/wix", updated.encode(), jwt),
        "wix-no-email": event("/webhooks/wix", rs256(contact_event("contact_created", "b2d7f1d0-0003",
                                                                    ("createdEvent", "entity"), no_email, at)).encode(), jwt),
        "wix-bad-signature": event("/webhooks/wix", f"{header}.{forged_claims}.{signature}".encode(), jwt),
        "wix-not-a-jwt": event("/webhooks/wix", b"not-a-jwt", jwt),
        "wixautomations-form-submission": event(
            f"/webhooks/wixautomations?token={AUTOMATIONS_TOKEN}",
            compact({"formName": "Contact us", "contactId": "c-77",
                     "submissions": {"First name": "Bessie", "Last name": "Coleman", "Email": "bessie.coleman@example.com",
                                     "Phone": "+1 555 0122", "Subscribe to newsletter": "Yes"}}),
            automations),
        "wixautomations-wrong-token": event("/webhooks/wixautomations?token=not-the-token",
                                            compact({"email": "bessie.coleman@example.com"}), automations),
    }
