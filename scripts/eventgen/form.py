"""Plain HTML forms and JSON posters (route token), and the newsletter example route."""
from . import alb, compact, event, route_secret


FORM_TOKEN = route_secret("form")


def events(at):
    urlencoded = b"email=Ada.Lovelace%40Example.com&first_name=Ada&last_name=Lovelace&phone=%2B44+20+7946+0000&company=Analytical+Engines&newsletter=on"
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    parts = [("E-mail", "grace@example.com"), ("Name", "Grace Brewster Hopper"), ("tel", "+1 212 555 0101"), ("Organization", "US Navy")]
    multipart = "".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n" for k, v in parts
    )
    multipart += f"--{boundary}\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n"
    browser = {"content-type": "application/x-www-form-urlencoded", "origin": "https://example.com", "user-agent": "Mozilla/5.0"}
    json_headers = {"content-type": "application/json"}
    return {
        "form-urlencoded": event(f"/webhooks/form?token={FORM_TOKEN}", urlencoded, browser),
        "form-multipart": event(f"/webhooks/form?token={FORM_TOKEN}", multipart.encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}),
        "form-json": event(f"/webhooks/form?token={FORM_TOKEN}", compact({"email": "katherine@example.com", "name": "Katherine Johnson", "phone": "+1 757 555 0199", "company": "NASA"}), json_headers),
        "form-no-email": event(f"/webhooks/form?token={FORM_TOKEN}", compact({"name": "No Email", "message": "Call me"}), json_headers),
        "form-wrong-token": event("/webhooks/form?token=not-the-token", urlencoded, browser),
        "form-missing-token": event("/webhooks/form", urlencoded, browser),
        "form-malformed-json": event(f"/webhooks/form?token={FORM_TOKEN}", b'{"email": "ada@example.com", ', json_headers),
        "form-unsupported-type": event(f"/webhooks/form?token={FORM_TOKEN}", b"email=ada@example.com", {"content-type": "text/plain"}),
        "alb-form-urlencoded": alb(event(f"/webhooks/form?token={FORM_TOKEN}", urlencoded, browser)),
        "newsletter-signup": event(NEWSLETTER, SIGNUP, browser),
        # The defences of a public form (README, "Securing public forms").
        "newsletter-honeypot": event(NEWSLETTER, SIGNUP.replace(b"website=", b"website=http%3A%2F%2Fspam.example"), browser),
        "newsletter-other-origin": event(NEWSLETTER, SIGNUP, {**browser, "origin": "https://evil.example"}),
        "newsletter-no-captcha": event(NEWSLETTER, SIGNUP.split(b"&cf-turnstile-response=")[0], browser),
    }


NEWSLETTER = f"/webhooks/newsletter?token={route_secret('newsletter')}"
# As the site's form posts it: the empty honeypot, and the Turnstile widget's token (the local
# stack's stand-in passes any token for Cloudflare's test secret in local/secret.json).
SIGNUP = (
    b"your_email=mary%40example.com&your_name=Mary+Jackson&agree=on&source=footer&page=%2Fblog%2Fpost"
    b"&interests=rockets&interests=math&website=&cf-turnstile-response=XXXX.DUMMY.TOKEN.XXXX"
)
