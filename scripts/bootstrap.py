#!/usr/bin/env python3
"""Bootstrap a Google Cloud project for refundguard's Terraform, once: the APIs Terraform itself
needs before it can enable the rest, the Pub/Sub service agent (so the first ``terraform apply``
does not stop on its absence), and a private, versioned state bucket. It prints the ``gcloud``
commands and runs nothing unless told to (``--apply``, which asks before each run unless
``--yes``); it is safe to run again (an existing bucket is kept, enabling an API twice is a no-op).

    scripts/bootstrap.py --project my-project-id                  # prints what it would run
    scripts/bootstrap.py --project my-project-id --apply          # runs it, asking first
    scripts/bootstrap.py --project my-project-id --region europe-west1 --bucket my-tfstate --apply

Needs ``gcloud``, logged in (``gcloud auth login``) as someone who may enable services and create
buckets in the project (Owner, or docs/deploy.md's "Who deploys"). Then: ``terraform init`` with
the bucket, as the script's last lines say.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence

#: What Terraform needs before its first plan: to enable the rest (serviceusage), to read the
#: project (cloudresourcemanager), its state bucket (storage); pubsub, to create its agent now.
BOOTSTRAP_APIS = (
    "serviceusage.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "storage.googleapis.com",
    "pubsub.googleapis.com",
)
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+(-[a-z0-9]+)+$")


def commands(project: str, region: str, bucket: str) -> list[tuple[str, list[str]]]:
    """(why, argv) of each step, in order."""
    gs = f"gs://{bucket}"
    return [
        (
            "enable the APIs Terraform needs to start",
            ["gcloud", "services", "enable", *BOOTSTRAP_APIS, f"--project={project}"],
        ),
        (
            "create the Pub/Sub service agent now (else the first apply may stop on its absence)",
            [
                "gcloud",
                "beta",
                "services",
                "identity",
                "create",
                "--service=pubsub.googleapis.com",
                f"--project={project}",
            ],
        ),
        (
            "create the state bucket: private, uniform access (skipped if it exists)",
            [
                "gcloud",
                "storage",
                "buckets",
                "create",
                gs,
                f"--project={project}",
                f"--location={region}",
                "--uniform-bucket-level-access",
                "--public-access-prevention",
            ],
        ),
        (
            "keep every version of the state",
            ["gcloud", "storage", "buckets", "update", gs, "--versioning", f"--project={project}"],
        ),
    ]


def bucket_exists(
    bucket: str, project: str, run: Callable[..., subprocess.CompletedProcess[str]]
) -> bool:
    done = run(
        ["gcloud", "storage", "buckets", "describe", f"gs://{bucket}", f"--project={project}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bootstrap.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--project", required=True, help="the Google Cloud project id")
    parser.add_argument("--region", default="us-central1", help="the state bucket's location")
    parser.add_argument("--bucket", help="the state bucket (default: PROJECT-tfstate)")
    parser.add_argument("--prefix", default="refundguard", help="the state's prefix in the bucket")
    parser.add_argument("--apply", action="store_true", help="run the commands (default: print)")
    parser.add_argument("--yes", action="store_true", help="with --apply: do not ask first")
    args = parser.parse_args(argv)
    args.bucket = args.bucket or f"{args.project}-tfstate"
    for value, pattern, what in (
        (args.project, PROJECT_ID, "--project must be a project id (6-30 of a-z, 0-9, -)"),
        (args.bucket, BUCKET, "--bucket must be a bucket name (3-63 of a-z, 0-9, ., _, -)"),
        (args.region, REGION, "--region must be a location such as us-central1"),
    ):
        if not pattern.match(value):
            parser.error(what)
    return args


def main(
    argv: Sequence[str] | None = None,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ask: Callable[[str], str] = input,
) -> int:
    args = parse(argv)
    steps = commands(args.project, args.region, args.bucket)
    mode = "Running" if args.apply else "Dry run (nothing is run; --apply runs it)"
    print(f"{mode}: bootstrap of project {args.project}, state bucket gs://{args.bucket}\n")
    for why, argv_ in steps:
        print(f"# {why}\n{shlex.join(argv_)}")
        if not args.apply:
            continue
        if argv_[2:4] == ["buckets", "create"] and bucket_exists(args.bucket, args.project, run):
            print("  (the bucket exists: kept)")
            continue
        if not args.yes and ask("  run it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("  stopped: nothing more is run", file=sys.stderr)
            return 1
        if run(argv_, check=False).returncode != 0:
            print(f"  failed: {shlex.join(argv_)}", file=sys.stderr)
            return 1
    print(
        "\n# then, in infra/ (docs/deploy.md):\n"
        "cp terraform.tfvars.example terraform.tfvars   # and edit it\n"
        f"terraform init -backend-config=bucket={args.bucket} "
        f"-backend-config=prefix={args.prefix}\n"
        "terraform plan -out=build/tfplan && terraform apply build/tfplan"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
