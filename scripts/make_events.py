#!/usr/bin/env python3
"""Writes events/*.json: Lambda Function URL (payload v2) events for every sender and topic,
signed with the secrets in local/secret.json exactly as each sender signs.

    python3 scripts/make_events.py                 # regenerate the committed events/
    python3 scripts/make_events.py --out DIR --now # fresh timestamps (for live replays)

Each sender's events come from its module in scripts/eventgen/. Function URLs pass JSON bodies
as text and base64-encode other content types, as AWS does.
"""
import argparse
import importlib
import json
import os
import pkgutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eventgen  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(eventgen.ROOT, "events"))
    parser.add_argument("--now", action="store_true", help="sign timestamped events with the current time")
    args = parser.parse_args()
    at = int(time.time()) if args.now else eventgen.FIXED_SIGNING_TIME
    events = {}
    for info in sorted(pkgutil.iter_modules(eventgen.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"eventgen.{info.name}")
        for name, ev in module.events(at).items():
            if name in events:
                sys.exit(f"event {name} is defined twice")
            events[name] = ev
    os.makedirs(args.out, exist_ok=True)
    for name, ev in sorted(events.items()):
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(ev, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print(f"wrote {len(events)} events to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
