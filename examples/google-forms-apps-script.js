/**
 * Google Forms → ac-webhook-sync (route `googleforms`).
 *
 * Google Forms has no webhook. This Apps Script, bound to the form, posts every response to
 * the webhook function as JSON:
 *
 *   {
 *     "formId": "…", "formTitle": "…", "responseId": "…",
 *     "timestamp": "2026-01-01T10:00:00.000Z",
 *     "respondentEmail": "…",            // "" unless the form collects email addresses
 *     "answers": { "<question title>": "<answer>" | ["<choice>", …] | [["<grid row>"], …] }
 *   }
 *
 * Set up:
 *   1. In the form: ⋮ › Script editor (Apps Script), paste this file.
 *   2. Set WEBHOOK_URL below: the function URL + `webhooks/googleforms?token=` + the route
 *      token (`webhook_secrets.googleforms` in the secret).
 *   3. Run `installTrigger` once and grant the permissions it asks for.
 * A response that could not be delivered makes the trigger fail, and Google emails the
 * form owner (Triggers › Failure notification settings).
 */

const WEBHOOK_URL = 'https://YOUR-FUNCTION-URL.lambda-url.REGION.on.aws/webhooks/googleforms?token=YOUR-ROUTE-TOKEN';
/** Attempts in all, with 2 s, 4 s, 8 s between them. */
const MAX_ATTEMPTS = 4;

/** Creates the installable "on form submit" trigger (run once). */
function installTrigger() {
  const form = FormApp.getActiveForm();
  ScriptApp.getProjectTriggers()
    .filter((t) => t.getHandlerFunction() === 'onFormSubmit')
    .forEach((t) => ScriptApp.deleteTrigger(t));
  ScriptApp.newTrigger('onFormSubmit').forForm(form).onFormSubmit().create();
}

/** The trigger: one response in, one POST out. */
function onFormSubmit(e) {
  const form = FormApp.getActiveForm();
  const response = e.response;
  const answers = {};
  response.getItemResponses().forEach((itemResponse) => {
    const item = itemResponse.getItem();
    const base = item.getTitle() || 'Question ' + (item.getIndex() + 1);
    // Two questions with one title keep both answers: "Title", "Title (2)".
    let title = base;
    for (let n = 2; Object.prototype.hasOwnProperty.call(answers, title); n++) {
      title = base + ' (' + n + ')';
    }
    answers[title] = itemResponse.getResponse();
  });
  const payload = {
    formId: form.getId(),
    formTitle: form.getTitle(),
    responseId: response.getId(),
    timestamp: response.getTimestamp().toISOString(),
    respondentEmail: response.getRespondentEmail() || '',
    answers: answers,
  };
  post(payload);
}

/**
 * POSTs JSON. The function answers 503 when it could neither sync nor queue the contact:
 * that, and a network failure, are retried; anything else (401 wrong token, 400, 415) is a
 * setup error and fails at once.
 */
function post(payload) {
  const options = {
    method: 'post',
    contentType: 'application/json',
    payload: JSON.stringify(payload),
    muteHttpExceptions: false, // a non-2xx answer throws, so a failure is never silent
    followRedirects: false,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      UrlFetchApp.fetch(WEBHOOK_URL, options);
      return;
    } catch (err) {
      // With muteHttpExceptions false the status is only in the message: "... returned code 503 ...".
      const match = /returned code (\d+)/.exec(String(err && err.message));
      const status = match ? Number(match[1]) : null;
      const retryable = status === null || status === 503;
      if (!retryable || attempt >= MAX_ATTEMPTS) {
        throw err;
      }
      Utilities.sleep(1000 * Math.pow(2, attempt)); // 2 s, 4 s, 8 s
    }
  }
}
