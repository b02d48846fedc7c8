#!/usr/bin/env python3
"""``make run``: the Firestore and Pub/Sub emulators, the store APIs' stand-ins, every function and
a sample platform consumer, locally, until Ctrl-C.

Ports come from environment variables (see ``refundguard_dev.stack.PORTS``; e.g.
``ADMIN_PORT=9083 make run``), or all at once from a base port (``PORT_BASE=9081 make run`` or
``--base-port 9081``: 9081..9093); every busy one is named before anything starts. Each function
runs in its own ``functions-framework`` process, as Cloud Functions runs it. The stack is
described in ``.run/stack.json``, which the helper scripts read, so they always talk to this
stack. Nothing here reaches Google Cloud, Google Play or Apple: every client points at an emulator
or a local stand-in (the Play Developer API's and the App Store Server API's, seeded with demo
orders). Ctrl-C, SIGINT or SIGTERM stops everything this script started (the handlers are
installed explicitly, so this holds even when SIGINT was ignored at start, as under nohup or a CI
runner).

Access-change events: the functions publish to a topic on the Pub/Sub emulator, which pushes each
event to the sample platform consumer (examples/platform_consumer, token checks off: the emulator
signs nothing), which prints it here; the events sweep runs every minute, as Cloud Scheduler would.
The reconciler runs when asked (``refundguard-admin run``, the banner's recipe), so a reader sees
it catch the seeded missed refund; ``RECONCILE_EVERY_SECONDS=300`` schedules it as well.
Without the Pub/Sub emulator installed, everything else runs with events off.

Two demo tenants (``refundguard_dev.demo_tenants``) are registered at start-up, each with its own
apps, its own App Store Server API key sealed by a Cloud KMS stand-in (on a free port), a purchase
and a tenant admin; the banner lists them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from refundguard_dev import demo_tenants
from refundguard_dev.demo_tenants import DEMO_TENANTS
from refundguard_dev.emulator import (
    find_emulator_jar,
    find_pubsub_jar,
    start_emulator,
    start_pubsub_emulator,
)
from refundguard_dev.local import (
    EVENTS_TOPIC_NAME,
    INSIGHT_SUBSCRIPTIONS,
    PROJECT,
    RUN_DIR,
    common_env,
    console_origins,
    consumer_env,
    events_env,
    insight_env,
    local_admin_env,
    local_apple_env,
    local_console_env,
    serve_dev_certs,
)
from refundguard_dev.local_stores import (
    APPLE_ORDER,
    DEMO_ORDER,
    DEMO_SUBSCRIPTION,
    DEMO_TOKEN,
    MISSED_ORDER,
    MISSED_TOKEN,
    SUBSCRIPTION_FIRST_ORDER,
    UNSEEN_ORDER,
    start_local_stores,
)
from refundguard_dev.processes import ROOT, start_function, stop
from refundguard_dev.pubsub import EmulatorPubSub
from refundguard_dev.stack import STACK_FILE, Stack, StackError, read_ports

FUNCTIONS = ("play_notifications", "apple_notifications", "admin", "admin_console")
CONSUMER = ROOT / "examples" / "platform_consumer" / "main.py"
SWEEP_EVERY_S = 60
#: 0 (the default): the reconciler runs only when asked, so the banner's recipe shows its catch.
RECONCILE_EVERY_VARIABLE = "RECONCILE_EVERY_SECONDS"


class Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop everything started, then exit."""


def stop_on_signals() -> None:
    """SIGINT and SIGTERM both stop the stack. Installed explicitly: a process started with SIGINT
    ignored (nohup, a non-interactive shell, a CI runner) has no KeyboardInterrupt otherwise."""

    def shutdown(signum: int, _frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/run_local.py",
        description="Start refundguard locally (make run): the emulators, every function, the "
        "store APIs' stand-ins and a sample platform consumer, until Ctrl-C or SIGTERM.",
        epilog="Ports: each service's variable (FIRESTORE_PORT, PLAY_PORT, APPLE_PORT, ADMIN_PORT, "
        "ADMIN_CERTS_PORT, PLAY_API_PORT, APPLE_API_PORT, PUBSUB_PORT, CONSUMER_PORT, "
        "EVENTS_SWEEP_PORT, RECONCILE_PORT, CONSOLE_PORT) wins over the base. Other variables: "
        f"{RECONCILE_EVERY_VARIABLE} (schedule the reconciler, seconds; default 0: only when "
        "asked), REFUND_REQUESTS, ADMIN_EMAILS, ADMIN_CERTS_URL.",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        metavar="N",
        help="move every port: N plus each default's offset from 8081 (N..N+12); the same as "
        "PORT_BASE=N",
    )
    return parser.parse_args(argv)


def reconcile_every_s(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    raw = environ.get(RECONCILE_EVERY_VARIABLE, "").strip() or "0"
    if not raw.isdigit():
        raise StackError(f"{RECONCILE_EVERY_VARIABLE}={raw!r} is not a number of seconds")
    return int(raw)


def preflight() -> dict[str, int]:
    """Everything that can be known wrong before starting anything, said in one line."""
    reconcile_every_s()
    ports = read_ports()
    if shutil.which(os.environ.get("JAVA", "java")) is None:
        raise StackError(
            "Java is not installed (the Firestore emulator needs Java 17+: "
            "apt install openjdk-17-jre-headless)"
        )
    if find_emulator_jar() is None:
        raise StackError(
            "the Firestore emulator is not installed: apt install "
            "google-cloud-cli-firestore-emulator (or gcloud components install "
            "cloud-firestore-emulator), or set FIRESTORE_EMULATOR_JAR"
        )
    return ports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.base_port is not None:
        os.environ["PORT_BASE"] = str(args.base_port)
    stop_on_signals()
    try:
        return run(preflight())
    except Stop:  # a signal before anything started
        return 0


def run(ports: dict[str, int]) -> int:
    RUN_DIR.mkdir(exist_ok=True)
    urls = {service: f"http://127.0.0.1:{number}" for service, number in ports.items()}
    env = common_env(ports["firestore"])
    admin_env = local_admin_env(ports["admin"], ports["issuer"])
    console_env = local_console_env(ports["issuer"])
    pubsub_jar = find_pubsub_jar()
    if pubsub_jar is not None:
        env.update(events_env(ports["pubsub"]))
    processes: list[subprocess.Popen[bytes]] = []
    stores = None
    reconcile_every = reconcile_every_s()
    try:
        emails = [e.strip() for e in admin_env["ADMIN_EMAILS"].split(",") if "@" in e]
        if admin_env["ADMIN_CERTS_URL"].startswith("http://127.0.0.1:"):
            serve_dev_certs(
                ports["issuer"],
                console_client_id=console_env["CONSOLE_OAUTH_CLIENT_ID"],
                console_origins=console_origins(ports["admin_console"]),
                hint_email=emails[0] if emails else "admin@example.com",
            )
        log = RUN_DIR / "firestore.log"
        print(f"Starting the Firestore emulator on {urls['firestore']} (log: {log})", flush=True)
        jar = find_emulator_jar()
        assert jar is not None
        emulator = start_emulator(jar, log, project=PROJECT, port=ports["firestore"])
        processes.append(emulator.process)
        if pubsub_jar is not None:
            start_events(pubsub_jar, ports, urls, processes)
        else:
            print(
                "\nNOTE: the Pub/Sub emulator is not installed (apt install "
                "google-cloud-cli-pubsub-emulator): access-change EVENTS ARE OFF in this run.\n",
                flush=True,
            )
        print(
            f"Starting the Play Developer API stand-in on {urls['play_api']} and the App Store "
            f"Server API stand-in on {urls['apple_api']} (Production)",
            flush=True,
        )
        stores = start_local_stores(ports["play_api"], ports["apple_api"])
        print(
            "Registering the demo tenants (creators) in Firestore, their Apple keys sealed with "
            f"the Cloud KMS stand-in on {stores.kms_env['TENANT_KEYS_KMS_BASE_URL']}",
            flush=True,
        )
        apple_bundles = tuple(b for b in local_apple_env()["APPLE_BUNDLE_IDS"].split(",") if b)
        demo_tenants.register(
            emulator.host,
            env,
            apple_bundles,
            keys=stores.tenant_keys,
            kms_env={**stores.kms_env, **key_file(stores)},
        )
        demo_ids = [tenant.id for tenant in DEMO_TENANTS]
        own_env = {
            "play_notifications": stores.play_env,
            "apple_notifications": local_apple_env(),
            "admin": {
                **admin_env,
                **stores.play_env,
                **stores.apple_env,
                **stores.kms_env,
                "RECONCILE_URL": urls["reconcile"],
                **insight_env("admin", events=pubsub_jar is not None, tenants=demo_ids),
            },
            "reconcile": reconcile_env(stores),
            "admin_console": {
                **console_env,
                **stores.play_env,
                **stores.apple_env,
                **stores.kms_env,
                **insight_env("admin_console", events=pubsub_jar is not None, tenants=demo_ids),
            },
        }
        for target in FUNCTIONS:
            if target == "admin_console" and not console_env["CONSOLE_OAUTH_CLIENT_ID"]:
                print(
                    "Not starting the admin console: with ADMIN_CERTS_URL set it needs a real "
                    "CONSOLE_OAUTH_CLIENT_ID (docs/console.md)",
                    flush=True,
                )
                continue
            print(f"Starting {target} on {urls[target]}/", flush=True)
            processes.append(start_function(target, ports[target], {**env, **own_env[target]}))
        print(f"Starting reconcile on {urls['reconcile']}/", flush=True)
        processes.append(
            start_function("reconcile", ports["reconcile"], {**env, **own_env["reconcile"]})
        )
        if reconcile_every:
            sweep_every(urls["reconcile"], reconcile_every)
        if pubsub_jar is not None:
            seed_alert_demo(env)
            print(f"Starting events_sweep on {urls['events_sweep']}/", flush=True)
            processes.append(start_function("events_sweep", ports["events_sweep"], env))
            sweep_every(urls["events_sweep"], SWEEP_EVERY_S)
        problems = demo_tenants.send_purchases(
            urls["play_notifications"] + "/", urls["apple_notifications"] + "/"
        )
        Stack(urls=urls, project=PROJECT, admin_emails=emails, pid=os.getpid()).write()
        print(
            banner(urls, emails, events=pubsub_jar is not None, reconcile_every=reconcile_every),
            tenants_banner(
                urls, stores.tenant_keys, problems, stores.kms_env["TENANT_KEYS_KMS_BASE_URL"]
            ),
            sep="",
            flush=True,
        )
        return watch(processes)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        STACK_FILE.unlink(missing_ok=True)
        stop(processes, ignore_signals=True)
        if stores is not None:
            stores.stop()


def seed_alert_demo(env: dict[str, str]) -> None:
    """Data for which the events sweep's first run fires one alert of each kind for the tenant
    demo-creator (docs/alerts.md); the consumer prints them as [platform] ALERT lines."""
    from google.cloud import firestore
    from refundguard_dev import alert_demo

    os.environ["FIRESTORE_EMULATOR_HOST"] = env["FIRESTORE_EMULATOR_HOST"]
    alert_demo.seed(firestore.Client(project=PROJECT), time.time_ns() // 1_000_000)


def reconcile_env(stores: Any) -> dict[str, str]:
    """The reconciler against both stand-ins: voids of the demo package, the App Store's
    notification history (Production, trusting the local test root), refund requests answered."""
    return {
        **stores.play_env,
        **stores.apple_env,
        **stores.kms_env,
        "APPLE_ENVIRONMENTS": "Production",
        "REFUND_REQUESTS": os.environ.get("REFUND_REQUESTS", "answer"),
        "RECONCILE_BUDGET_SECONDS": "45",
    }


def key_file(stores: Any) -> dict[str, str]:
    """The service-account key file the stand-ins trust (Play's and KMS's): the credentials."""
    return {"GOOGLE_APPLICATION_CREDENTIALS": stores.play_env["GOOGLE_APPLICATION_CREDENTIALS"]}


def start_events(
    jar: Path, ports: dict[str, int], urls: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> None:
    """The Pub/Sub emulator, the events topic, the sample consumer and its push subscription
    (each process added to ``processes`` as soon as it runs, so a signal stops it too)."""
    log = RUN_DIR / "pubsub.log"
    print(f"Starting the Pub/Sub emulator on {urls['pubsub']} (log: {log})", flush=True)
    emulator = start_pubsub_emulator(jar, log, port=ports["pubsub"])
    processes.append(emulator.process)
    pubsub = EmulatorPubSub(emulator.host, PROJECT)
    pubsub.topic(EVENTS_TOPIC_NAME)
    print(f"Starting the sample platform consumer on {urls['consumer']}/", flush=True)
    processes.append(start_function("receive", ports["consumer"], consumer_env(), source=CONSUMER))
    pubsub.subscription(
        "platform-consumer-push", EVENTS_TOPIC_NAME, push_endpoint=f"{urls['consumer']}/"
    )
    for name in INSIGHT_SUBSCRIPTIONS.values():  # the BigQuery subscription's stand-ins
        pubsub.subscription(name, EVENTS_TOPIC_NAME, ordering=False)


def sweep_every(url: str, seconds: float) -> None:
    """What Cloud Scheduler does in Google Cloud: POST to the events sweep, now and then."""

    def loop() -> None:
        while True:
            time.sleep(seconds)
            try:
                request = urllib.request.Request(f"{url}/", data=b"", method="POST")
                urllib.request.urlopen(request, timeout=60).read()
            except OSError:
                pass  # the sweep logs its own failure; the next run tries again

    threading.Thread(target=loop, daemon=True).start()


def watch(processes: list[subprocess.Popen[bytes]]) -> int:
    while all(p.poll() is None for p in processes):
        time.sleep(0.5)
    for process in processes:
        if process.poll() is not None:
            print(
                f"make run: a process exited (code {process.returncode}): "
                f"{' '.join(map(str, process.args))[-200:]}; its output is above "
                f"(the emulator's in {RUN_DIR}/firestore.log); stopping everything",
                file=sys.stderr,
            )
    return 1


def token_hash(purchase_token: str) -> str:
    """How the sample consumer (and refundguard's logs) show a purchase token: a short hash."""
    return hashlib.sha256(purchase_token.encode()).hexdigest()[:16]


def banner(
    urls: dict[str, str], emails: list[str], *, events: bool = True, reconcile_every: int = 0
) -> str:
    py = ".venv/bin/python"
    send = f"{py} scripts/send_play_notification.py"
    who = emails[0] if emails else "nobody"
    cli = f".venv/bin/refundguard-admin --url {urls['admin']}"
    shown = f"google:token_hash={token_hash(DEMO_TOKEN)}"  # how the consumer names the demo token
    events_lines = (
        f"""  Pub/Sub emulator     {urls["pubsub"]}   (topic {EVENTS_TOPIC_NAME})
  platform consumer    {urls["consumer"]}/   (examples/platform_consumer; prints [platform] lines)
  events_sweep         {urls["events_sweep"]}/   (run every {SWEEP_EVERY_S} s)
"""
        if events
        else "  (access-change events are OFF: no Pub/Sub emulator)\n"
    )
    schedule = (
        f"also every {reconcile_every} s" if reconcile_every else "runs when asked: `run` below"
    )
    return f"""
refundguard is running locally (Ctrl-C stops everything). Functions log to this terminal.

  Firestore emulator   {urls["firestore"]}   (project {PROJECT})
  play_notifications   {urls["play_notifications"]}/
  apple_notifications  {urls["apple_notifications"]}/   (Sandbox, trusting the local test root)
  admin                {urls["admin"]}/   (local ID tokens; admins: {", ".join(emails) or "none"})
  admin console        {urls["admin_console"]}/   (open it in a browser; local sign-in as {who})
  Play Developer API   {urls["play_api"]}/   (stand-in; PLAY_DEVELOPER_API=on, key in .run/)
  App Store Server API {urls["apple_api"]}/   (stand-in, Production; key in .run/)
  reconcile            {urls["reconcile"]}/   ({schedule})
{events_lines}
A purchase, granted once the Play API stand-in says PURCHASED (it records order {DEMO_ORDER}):

  {send} one-time --notification-type 1 --token {DEMO_TOKEN}

Look it up by order id, then refund it (a voided-purchase notification), as {who}:

  export REFUNDGUARD_ID_TOKEN=$({py} scripts/dev_admin_token.py)
  {cli} order {DEMO_ORDER}
  {send} voided --token {DEMO_TOKEN} --order-id {DEMO_ORDER}

and the platform consumer prints, within a second, the event it received:

  [platform] REVOKE {shown}: active -> revoked (version 2; google VOIDED_PURCHASE)

(the consumer never prints a purchase token: it shows the token_hash refundguard's logs carry)

Give the access back (the consumer then prints a GRANT with the admin's email and reason):

  {cli} show google {DEMO_TOKEN}
  {cli} regrant --order {DEMO_ORDER} --reason "refund was a mistake"

Orders no notification mentioned: found through the stores' APIs (then in Firestore next time):

  {cli} order {UNSEEN_ORDER}     # Google orders.get
  {cli} order {APPLE_ORDER}                   # Apple Look Up Order ID, verified

A void of an older subscription order is recorded, access kept (the latest order still entitles):

  {send} subscription --notification-type 4 --token {DEMO_SUBSCRIPTION}
  {send} voided --product-type 1 --token {DEMO_SUBSCRIPTION} \\
      --order-id {SUBSCRIPTION_FIRST_ORDER}

The same in a browser: open {urls["admin_console"]}/ , sign in as {who} with the local form,
paste {DEMO_ORDER} (or the token), read the timeline, re-grant with a reason.

A refund whose notification never arrived (seeded: {MISSED_ORDER}, refunded an hour ago): the
reconciler catches it (Cloud Scheduler runs it every 30 minutes when deployed; here, you do):

  {cli} show google {MISSED_TOKEN}      # active? not yet known
  {cli} run
  {cli} runs
  {cli} show google {MISSED_TOKEN}      # revoked, by VOIDED_PURCHASE via the reconciler

Google now lists the void of {DEMO_ORDER} too (the one the notification brought above), then
`run` again: applied 0, the void is already known. A void seen both ways is one event, so the
re-grant stands:

  {py} scripts/add_play_void.py --token {DEMO_TOKEN} --order {DEMO_ORDER}
  {cli} run
  {cli} show google {DEMO_TOKEN}      # still active, by the admin's re-grant
  {cli} refund-requests

Alerts (docs/alerts.md): within a minute the sweep fires one of each kind for the seeded tenant
demo-creator, and the consumer prints them: [platform] ALERT  demo-creator refund_spike (warning)...

What waits unpublished:
  curl -s -H "Authorization: Bearer $REFUNDGUARD_ID_TOKEN" {urls["admin"]}/events/unpublished

Apple (signed with the local test PKI):  {py} scripts/send_apple_notification.py REFUND
Any Play notification type:              {send} --help
"""


def tenants_banner(
    urls: dict[str, str], keys: dict[str, tuple[str, str]], problems: list[str], kms_url: str
) -> str:
    """The demo tenants: their apps, their purchases, and the tenant admin who signs in to the
    console and sees their own tenant only."""
    title = "Tenants (creators) registered at start-up, each with its own apps and Apple team"
    lines = ["", f"{title} (keys sealed by the Cloud KMS stand-in on {kms_url}):", ""]
    for demo in DEMO_TENANTS:
        key_id, issuer = keys.get(demo.id, (demo.apple_key_id, "?"))
        lines += [
            f"  {demo.id:<10} {demo.display_name}",
            f"             Play {demo.play_package}, Apple {demo.bundle_id} "
            f"(appAppleId {demo.app_apple_id})",
            f"             purchases: token {demo.token} (order {demo.order}), "
            f"Apple transaction {demo.transaction} (Sandbox)",
            f"             tenant admin: {demo.admin}; Apple key {key_id} (sealed with KMS), "
            f"issuer {issuer},",
            f"             .p8 in {demo.apple_key_file.relative_to(ROOT)} (to upload again on "
            "the tenant's page: Apple key)",
        ]
    first, other = DEMO_TENANTS[0], DEMO_TENANTS[1]
    lines += [
        "",
        f"Sign in to the console ({urls['admin_console']}/) as tenant admin {first.admin}: "
        f"{first.id}'s purchases",
        f"only. {first.token} is found; {other.token} ({other.id}'s) is not found,",
        "exactly like an id that does not exist. As the platform admin, pick a tenant or look up "
        "across all of them.",
        "",
        f"A refund in {first.id}'s app (one Play topic for every creator: routed by package):",
        "",
        f"  .venv/bin/python scripts/send_play_notification.py voided --package "
        f"{first.play_package} --token {first.token}",
    ]
    lines += [f"WARNING: {problem}" for problem in problems]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
