"""Google Forms via the Apps Script in examples/google-forms-apps-script.js: the documented JSON, route token."""
from . import compact, event, route_secret

TOKEN = route_secret("googleforms")
HEADERS = {
    "content-type": "application/json",
    "user-agent": "Mozilla/5.0 (compatible; Google-Apps-Script; beanserver; +https://script.google.com; id: UAEmdDd8Yf6ZG1F4R7bMxyY2bS5cjA)",
}

RESPONSE = {
    "formId": "1FAIpQLSeX7V2dN4c3qVd8kTz0aHjP6bYwQ1sR5uM9oLiKe2gCfA",
    "formTitle": "Workshop sign-up",
    "responseId": "2_ABaOnudK3xq7Y8mP1vR0sT6wZcE4fGhJ9lN2bD5",
    "timestamp": "2026-01-01T10:00:00.000Z",
    "respondentEmail": "Margaret.Hamilton@Example.com",
    "answers": {
        "First name": "Margaret",
        "Last name": "Hamilton",
        "Phone number": "+1 617 555 0169",
        "Company": "Hamilton Technologies",
        "Which sessions will you attend?": ["Morning", "Afternoon"],
        "Newsletter": "Yes",
    },
}


def events(at):
    url = f"/webhooks/googleforms?token={TOKEN}"
    # Email collection off: the address is an answer.
    from_answer = dict(RESPONSE, responseId="2_ABaOnudK3xq7Y8mP1vR0sT6wZcE4fGhJ9lN2bD6", respondentEmail="",
                       answers={"Your name": "Grace Hopper", "How can we reach you?": "Grace.Hopper@Example.com", "Organisation": "US Navy"})
    no_email = dict(RESPONSE, responseId="2_ABaOnudK3xq7Y8mP1vR0sT6wZcE4fGhJ9lN2bD7", respondentEmail="",
                    answers={"Your name": "No Email", "Comments": "Just looking"})
    return {
        "googleforms-response": event(url, compact(RESPONSE), HEADERS),
        "googleforms-email-answer": event(url, compact(from_answer), HEADERS),
        "googleforms-no-email": event(url, compact(no_email), HEADERS),
        "googleforms-wrong-token": event("/webhooks/googleforms?token=not-the-token", compact(RESPONSE), HEADERS),
        # Token valid, JSON cut short.
        "googleforms-malformed": event(url, compact(RESPONSE)[:-15], HEADERS),
    }
