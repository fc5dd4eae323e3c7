"""Webflow: site webhooks (v2) signed with x-webflow-timestamp (Unix ms) and x-webflow-signature
(hex HMAC of "timestamp:body"); dashboard-created hooks (v1 legacy body) are unsigned and carry
the route token in the URL instead."""
from . import SECRET, compact, event, hex_hmac, route_secret

WEBFLOW_SUBMISSION = {
    "triggerType": "form_submission",
    "payload": {
        "name": "Contact Us", "siteId": "65427cf400e02b306eaa049c",
        "data": {"First Name": "Zoe", "Last Name": "Washburne", "Email": "Zoe.Washburne@Example.com",
                 "Phone Number": 15550000000, "Company": "Serenity Charters", "Newsletter": "true",
                 "Message": "Need a ride to Persephone."},
        "schema": [
            {"fieldName": "First Name", "fieldType": "FormTextInput", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c4"},
            {"fieldName": "Last Name", "fieldType": "FormTextInput", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c5"},
            {"fieldName": "Email", "fieldType": "FormTextInput", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c6"},
            {"fieldName": "Phone Number", "fieldType": "FormTextInput", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c7"},
            {"fieldName": "Company", "fieldType": "FormTextInput", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c8"},
            {"fieldName": "Newsletter", "fieldType": "FormCheckboxInput", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c9"},
            {"fieldName": "Message", "fieldType": "FormTextarea", "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2ca"},
        ],
        "submittedAt": "2026-01-01T00:00:00.000Z", "id": "6321ca84df3949bfc6752327",
        "formId": "65429eadebe8a9f3a30f62d0", "formElementId": "4e038d2c-6a1e-4953-7be9-a59a2b453177",
        "pageId": "65427cf400e02b306eaa04a0", "publishedPath": "/contact", "pageUrl": "https://serenity.example/contact",
    },
}
WEBFLOW_LEGACY = {
    "name": "Contact Us", "site": "62749158efef318abc8d5a0f",
    "data": {"Name": "Hoban Washburne", "Email": "Wash@Example.com", "Phone": "+1 555 0142", "Company": "Serenity Charters"},
    "d": "2026-01-01T00:00:00.000Z", "_id": "6287ec36a841b25637c663df",
}


def previous_secret():
    value = SECRET["webhook_secrets"]["webflow"]
    return value[-1] if isinstance(value, list) else value


def signed(payload, at, secret=None, tamper=False, raw=None, signed_at=None):
    body = raw if raw is not None else compact(payload)
    timestamp = str((signed_at if signed_at is not None else at) * 1000)
    signature = hex_hmac(secret or route_secret("webflow"), f"{timestamp}:".encode() + body)
    if tamper:
        body = body.replace(b"Zoe.Washburne@", b"Saffron@")
    return event("/webhooks/webflow", body, {
        "content-type": "application/json",
        "user-agent": "Webflow",
        "x-webflow-timestamp": timestamp,
        "x-webflow-signature": signature,
    })


def unsigned(payload, query=""):
    return event(f"/webhooks/webflow{query}", compact(payload), {"content-type": "application/json", "user-agent": "Webflow"})


def with_payload(**changes):
    return dict(WEBFLOW_SUBMISSION, payload=dict(WEBFLOW_SUBMISSION["payload"], **changes))


def events(at):
    no_email = with_payload(id="6321ca84df3949bfc6752328", data={"First Name": "Jayne", "Message": "No email here."})
    rotated = with_payload(id="6321ca84df3949bfc6752329")
    publish = {"triggerType": "site_publish", "payload": {"site": "65427cf400e02b306eaa049c", "publishedOn": "2026-01-01T00:00:00.000Z",
                                                          "domains": ["serenity.example"], "publishedBy": {"displayName": "Mal"}}}
    return {
        "webflow-form-submission": signed(WEBFLOW_SUBMISSION, at),
        "webflow-rotated-secret": signed(rotated, at, secret=previous_secret()),
        "webflow-form-submission-v1-token": unsigned(WEBFLOW_LEGACY, f"?token={route_secret('webflow')}"),
        "webflow-v1-wrong-token": unsigned(WEBFLOW_LEGACY, "?token=not-the-route-token"),
        "webflow-missing-signature": unsigned(WEBFLOW_SUBMISSION),
        "webflow-bad-signature": signed(WEBFLOW_SUBMISSION, at, tamper=True),
        "webflow-stale-timestamp": signed(WEBFLOW_SUBMISSION, at, signed_at=at - 600),
        "webflow-no-email": signed(no_email, at),
        "webflow-malformed": signed(None, at, raw=b'{"triggerType":"form_submission","payload":{"data":'),
        "webflow-site-publish": signed(publish, at),
    }
