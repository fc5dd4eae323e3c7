"""The Bulk Contact Importer's completion callback, as the import-callback function receives it.
Its payload is undocumented: what matters is the reference and token we put in its params and
headers (token = hex HMAC-SHA256 of the reference with callback_secret)."""
import hashlib
import hmac

from . import SECRET, compact, event

REFERENCE = "batch-00000000000000010000000000000001"
BATCH_ID = "0641fbdd-5ee4-4c1c-9b6a-5b3f8d1c2e10"


def token(reference):
    return hmac.new(SECRET["callback_secret"].encode(), reference.encode(), hashlib.sha256).hexdigest()


def events(at):
    good = token(REFERENCE)
    params = [{"key": "ref", "value": REFERENCE}, {"key": "route", "value": "batch"}, {"key": "token", "value": good}]
    body = {"batchId": BATCH_ID, "params": params, "success": 249, "failure": 1}
    query = f"ref={REFERENCE}&route=batch&token={good}&batchId={BATCH_ID}"
    return {
        "import-callback-post": event("/", compact(body), {"content-type": "application/json", "x-import-token": good}),
        "import-callback-get": event(f"/?{query}", method="GET"),
        "import-callback-forged": event("/", compact(dict(body, params=[params[0], params[1], {"key": "token", "value": "0" * 64}])),
                                        {"content-type": "application/json", "x-import-token": "0" * 64}),
    }
