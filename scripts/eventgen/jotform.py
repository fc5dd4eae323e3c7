"""Jotform: multipart/form-data with a rawRequest part (PHP-encoded JSON string), route token."""
import json

from . import event, route_secret

TOKEN = route_secret("jotform")
BOUNDARY = "------------------------J1JNT4vbVO4FCC1qLG4HSv"


def php_json(obj):
    # Jotform's rawRequest: json_encode, escaped slashes, \uXXXX for non-ASCII.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def multipart(parts):
    # As curl writes it (the captured delivery in zulip's fixtures).
    body = "".join(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n" for k, v in parts)
    return (body + f"--{BOUNDARY}--\r\n").encode()


PRETTY = "Name:Mae Jemison, E-mail:Mae.Jemison@Example.com, Company:Jemison Group, Phone Number:(281) 555-0147"


def delivery(raw, submission_id="6084250982513018472", pretty=PRETTY):
    return multipart([
        ("action", ""), ("webhookURL", ""), ("username", "jotformuser"), ("formID", "243231271343446"),
        ("type", "WEB"), ("customParams", ""), ("product", ""), ("formTitle", "Contact Us"),
        ("customTitle", ""), ("submissionID", submission_id), ("event", ""), ("documentID", ""),
        ("teamID", ""), ("subject", ""), ("isSilent", ""), ("customBody", ""), ("rawRequest", raw),
        ("fromTable", ""), ("appID", ""),
        ("pretty", pretty),
        ("unread", ""), ("parent", ""), ("ip", "198.51.100.61"),
    ])


ANSWERS = {
    "slug": "submit/243231271343446", "submitSource": "form", "buildDate": "1732271172685",
    "q3_name": {"first": "Mae", "last": "Jemison"}, "q4_email": "Mae.Jemison@Example.com",
    "q5_company": "Jemison Group", "q6_phoneNumber": {"full": "(281) 555-0147"},
    "q7_message": "Tell me more about the programme", "q8_topics": ["Space", "Medicine"],
    "timeToSubmit": "12", "path": "/submit/243231271343446",
}


def events(at):
    url = f"/webhooks/jotform?token={TOKEN}"
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "user-agent": "JotForm"}
    no_email = {k: v for k, v in ANSWERS.items() if k != "q4_email"}
    return {
        "jotform-submission": event(url, delivery(php_json(ANSWERS)), headers),
        "jotform-no-email": event(url, delivery(php_json(no_email), "6084250982513018473", PRETTY.replace(" E-mail:Mae.Jemison@Example.com,", "")), headers),
        "jotform-wrong-token": event("/webhooks/jotform?token=not-the-token", delivery(php_json(ANSWERS)), headers),
        # Token valid, rawRequest is not JSON.
        "jotform-malformed": event(url, delivery('{"q4_email":"mae@example.com",'), headers),
    }
