"""Batches for the `batch` sender: a CSV export (few rows: contact_sync one by one) and an
NDJSON export to the `import` route (enough rows for the Bulk Contact Importer)."""
import json

from . import event, route_secret


def events(at):
    csv = "Email,First Name,Last Name,Company,Newsletter\n" + "".join(
        f"csv{i}@example.com,Csv{i},Person,Export Co,{'yes' if i % 2 else ''}\n" for i in range(5)
    )
    ndjson = "".join(json.dumps({"email": f"nd{i}@example.com", "name": f"Nd Person{i}", "company": "Backfill Inc"}) + "\n" for i in range(12))
    return {
        "batch-csv": event(f"/webhooks/batch?token={route_secret('batch')}", csv.encode(), {"content-type": "text/csv"}),
        "batch-ndjson-import": event(f"/webhooks/import?token={route_secret('import')}", ndjson.encode(), {"content-type": "application/x-ndjson"}),
        "batch-wrong-token": event("/webhooks/batch?token=nope", csv.encode(), {"content-type": "text/csv"}),
        "batch-malformed": event(f"/webhooks/batch?token={route_secret('batch')}", b'{"email":"a@example.com"}\n{not json\n', {"content-type": "application/x-ndjson"}),
    }
