#!/usr/bin/env python3
"""Build any Google Play Real-time Developer Notification and post it to a Play function.

Examples (against ``make run``; the Play function listens on port 8081), with ``.venv/bin/python``:

    scripts/send_play_notification.py voided --token demo-purchase-token-0001 \
        --order-id GPA.3301-0000-0000-00001
    scripts/send_play_notification.py voided --token tok-123
    scripts/send_play_notification.py subscription --notification-type 4 --token tok-123
    scripts/send_play_notification.py one-time --notification-type 1 --token tok-123
    scripts/send_play_notification.py voided-partial --token tok-123
    scripts/send_play_notification.py voided --product-type 1 --order-id GPA.1..0 --token tok-123
    scripts/send_play_notification.py refund-review --order-id GPA.1 --token ""
    scripts/send_play_notification.py test
    scripts/send_play_notification.py voided --token tok-123 --delivery cloudevent-binary
    scripts/send_play_notification.py voided --token tok-123 --print   # body only, no POST

Run it with the project's virtualenv (``make setup`` creates ``.venv``).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
import uuid

from refundguard_dev.local_stores import demo_order_id
from refundguard_dev.play_messages import DEFAULT_PACKAGE, developer_notification, envelope
from refundguard_dev.stack import local_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "kind",
        choices=["subscription", "one-time", "voided", "voided-partial", "refund-review", "test"],
    )
    parser.add_argument("--url", help="default: the Play function of the running `make run`")
    parser.add_argument("--token", default="demo-purchase-token-0001")
    parser.add_argument("--package", default=DEFAULT_PACKAGE)
    parser.add_argument("--notification-type", type=int, help="subscription/one-time type number")
    parser.add_argument("--product", default="course.premium")
    parser.add_argument(
        "--order-id",
        default=None,
        help="default: the demo order of a demo token (make run's stand-in knows it), else one "
        "derived from the token (the same every time)",
    )
    parser.add_argument(
        "--product-type", type=int, default=2, help="of a void: 1 subscription, 2 one-time"
    )
    parser.add_argument("--event-time-ms", type=int, default=None, help="default: now")
    parser.add_argument("--message-id", default=None, help="default: random (same id = redelivery)")
    parser.add_argument(
        "--delivery", default="push", choices=["push", "cloudevent-binary", "cloudevent-structured"]
    )
    parser.add_argument("--subscription", default="projects/demo/subscriptions/play-rtdn-push")
    parser.add_argument("--print", action="store_true", help="print the request body; do not send")
    args = parser.parse_args(argv)

    note = developer_notification(
        args.kind,
        package=args.package,
        token=args.token,
        event_time_ms=args.event_time_ms or int(time.time() * 1000),
        notification_type=args.notification_type,
        product=args.product,
        order_id=args.order_id or demo_order_id(args.token),
        product_type=args.product_type,
    )
    body, headers = envelope(
        note,
        message_id=args.message_id or str(uuid.uuid4().int)[:16],
        delivery=args.delivery,
        subscription=args.subscription,
    )
    if args.print:
        print(body.decode())
        return 0
    url = local_url("play_notifications", args.url)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.status, response.read().decode().strip())
            return 0
    except urllib.error.HTTPError as err:
        print(err.code, err.read().decode().strip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
