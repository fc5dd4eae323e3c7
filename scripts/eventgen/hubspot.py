"""HubSpot: workflow "Send a webhook" (legacy v1 contact JSON) signed with the app's client secret:
X-HubSpot-Signature-v3 (base64 HMAC of method + URI + body + timestamp ms) beside the legacy
X-HubSpot-Signature (v1: hex SHA-256 of secret + body; v2: secret + method + URI + body). The URI
is the Function URL HubSpot called, query included. App webhooks post an array of id-only events,
looked up through HubSpot's API (local/sender-apis.json)."""
import hashlib

from . import REST_HOST, b64_hmac, compact, event, rest_api, route_secret

HOST = "abcdefghij.lambda-url.us-east-1.on.aws"

CONTACT = {
    "vid": 3234574, "canonical-vid": 3234574, "merged-vids": [], "portal-id": 62515, "is-contact": True,
    "properties": {
        "email": {"value": "Inara.Serra@example.com", "versions": [{"value": "Inara.Serra@example.com", "source-type": "FORM", "timestamp": 1767225599000}]},
        "firstname": {"value": "Inara", "versions": []},
        "lastname": {"value": "Serra", "versions": []},
        "phone": {"value": "+1 617 555 0134", "versions": []},
        "company": {"value": "Companion Guild", "versions": []},
        "lifecyclestage": {"value": "lead", "versions": []},
        "hs_email_optout": {"value": "false", "versions": []},
        "lastmodifieddate": {"value": "1767225599000", "versions": []},
    },
    "form-submissions": [{"conversion-id": "8dbd2f3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f", "timestamp": 1767225599000,
                          "form-id": "b6c3c7d0-0000-4000-8000-000000000001", "portal-id": 62515, "page-url": "https://serenity.example/contact",
                          "title": "Contact us", "form-type": "HUBSPOT"}],
    "list-memberships": [],
    "identity-profiles": [{"vid": 3234574, "saved-at-timestamp": 1767225599000, "deleted-changed-timestamp": 0,
                           "identities": [{"type": "EMAIL", "value": "Inara.Serra@example.com", "timestamp": 1767225599000, "is-primary": True},
                                          {"type": "LEAD_GUID", "value": "f2ee4b40-0000-4000-8000-000000000002", "timestamp": 1767225599000}]}],
    "merge-audits": [],
}
APP_EVENTS = [
    {"eventId": 1, "subscriptionId": 12345, "portalId": 62515, "appId": 54321, "occurredAt": 1767225599000,
     "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 3234574, "changeFlag": "NEW", "changeSource": "CRM", "sourceId": "userId:1"},
    {"eventId": 2, "subscriptionId": 12346, "portalId": 62515, "appId": 54321, "occurredAt": 1767225599000,
     "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 3234574, "propertyName": "email",
     "propertyValue": "inara.serra@example.com", "changeSource": "CRM", "sourceId": "userId:1"},
]

# Three contacts in one request (HubSpot batches events): two it has, one deleted since.
APP_EVENTS_SEVERAL = APP_EVENTS + [
    {"eventId": 3, "subscriptionId": 12345, "portalId": 62515, "appId": 54321, "occurredAt": 1767225599500,
     "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 3234580, "changeFlag": "NEW", "changeSource": "FORM", "sourceId": "userId:1"},
    {"eventId": 4, "subscriptionId": 12345, "portalId": 62515, "appId": 54321, "occurredAt": 1767225599600,
     "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 999999, "changeFlag": "NEW", "changeSource": "IMPORT", "sourceId": "userId:1"},
]
APP_DELETION = [
    {"eventId": 5, "subscriptionId": 12347, "portalId": 62515, "appId": 54321, "occurredAt": 1767225599000,
     "subscriptionType": "contact.deletion", "attemptNumber": 0, "objectId": 3234574, "changeFlag": "DELETED", "changeSource": "CRM", "sourceId": "userId:1"},
]


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def hubspot(payload, at, versions=("v3", "v1"), query="", tamper=False, raw=None, signed_at=None,
            host=HOST, stage=""):
    body = raw if raw is not None else compact(payload)
    path = "/webhooks/hubspot" + (f"?{query}" if query else "")
    # The URL HubSpot called: behind a REST API, the stage comes before the route's path.
    uri = f"https://{host}{stage}{path}"
    secret = route_secret("hubspot")
    timestamp = str((signed_at if signed_at is not None else at) * 1000)
    headers = {"content-type": "application/json",
               "user-agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio-http-client) - WebhooksExecutorDaemon-executor"}
    if "v3" in versions:
        headers["x-hubspot-signature-v3"] = b64_hmac(secret, b"POST" + uri.encode() + body + timestamp.encode())
        headers["x-hubspot-request-timestamp"] = timestamp
    if "v1" in versions:
        headers["x-hubspot-signature"] = sha256_hex(secret.encode() + body)
        headers["x-hubspot-signature-version"] = "v1"
    elif "v2" in versions:
        headers["x-hubspot-signature"] = sha256_hex(secret.encode() + b"POST" + uri.encode() + body)
        headers["x-hubspot-signature-version"] = "v2"
    if tamper:
        body = body.replace(b"Inara.Serra@", b"Saffron@")
    return event(path, body, headers)


def events(at):
    no_email = dict(CONTACT, vid=3234575, properties={k: v for k, v in CONTACT["properties"].items() if k != "email"},
                    **{"identity-profiles": []})
    return {
        "hubspot-workflow-contact": hubspot(CONTACT, at),
        "hubspot-workflow-contact-query": hubspot(CONTACT, at, versions=("v3",), query="portal=62515&list=new%20leads"),
        "hubspot-workflow-contact-v1": hubspot(CONTACT, at, versions=("v1",)),
        "hubspot-workflow-contact-v2": hubspot(CONTACT, at, versions=("v2",)),
        "hubspot-bad-signature": hubspot(CONTACT, at, versions=("v3",), tamper=True),
        "hubspot-missing-signature": hubspot(CONTACT, at, versions=()),
        "hubspot-stale-timestamp": hubspot(CONTACT, at, versions=("v3",), signed_at=at - 600),
        "hubspot-no-email": hubspot(no_email, at),
        "hubspot-malformed": hubspot(None, at, raw=b'{"vid":3234574,"properties":'),
        "hubspot-app-webhook": hubspot(APP_EVENTS, at),
        "hubspot-app-contacts": hubspot(APP_EVENTS_SEVERAL, at),
        "hubspot-app-deletion": hubspot(APP_DELETION, at),
        "rest-hubspot-workflow-contact": rest_api(
            hubspot(CONTACT, at, versions=("v3",), query="portal=62515", host=REST_HOST, stage="/prod")),
    }
