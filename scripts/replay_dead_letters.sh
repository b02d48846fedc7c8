#!/usr/bin/env bash
# Replay dead-lettered Google Play RTDN messages: pull them from the dead-letter subscription,
# re-publish each one (same data, same attributes, plus refundguard_replay_of=<original messageId>)
# to the RTDN topic, and acknowledge it on the dead-letter subscription only after the publish worked.
#
# Usage:
#   scripts/replay_dead_letters.sh [--dry-run] [--max N] [PROJECT_ID]
# Defaults come from `terraform -chdir=infra output` when available; override with
#   DEAD_LETTER_SUBSCRIPTION=projects/P/subscriptions/S RTDN_TOPIC=projects/P/topics/T
# Needs gcloud (authenticated, with roles/pubsub.subscriber on the dead-letter subscription and
# roles/pubsub.publisher on the topic) and python3 (JSON handling).
#
# Fix the cause first (see the function's ERROR logs), or the replayed messages will simply be
# dead-lettered again after the subscription's max delivery attempts.
set -euo pipefail

dry_run=0
max=100
project=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --max) max="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) project="$1" ;;
  esac
  shift
done

here="$(cd "$(dirname "$0")/.." && pwd)"
tf_output() {
  command -v terraform >/dev/null 2>&1 && terraform -chdir="$here/infra" output -raw "$1" 2>/dev/null || true
}
sub="${DEAD_LETTER_SUBSCRIPTION:-$(tf_output dead_letter_subscription)}"
topic="${RTDN_TOPIC:-$(tf_output play_rtdn_topic)}"
if [ -z "$sub" ] || [ -z "$topic" ]; then
  if [ -z "$project" ]; then
    echo "Set DEAD_LETTER_SUBSCRIPTION and RTDN_TOPIC, run from a directory with Terraform state, or pass PROJECT_ID (default names)." >&2
    exit 2
  fi
  sub="${sub:-projects/$project/subscriptions/refundguard-play-rtdn-dead-letter}"
  topic="${topic:-projects/$project/topics/refundguard-play-rtdn}"
fi
echo "dead-letter subscription: $sub"
echo "RTDN topic:               $topic"

replayed=0
while [ "$replayed" -lt "$max" ]; do
  batch=$(( max - replayed < 10 ? max - replayed : 10 ))
  pulled="$(gcloud pubsub subscriptions pull "$sub" --limit="$batch" --format=json)"
  count="$(printf '%s' "$pulled" | python3 -c 'import json,sys; print(len(json.load(sys.stdin) or []))')"
  [ "$count" -eq 0 ] && break

  # One line per message: ackId <TAB> messageId <TAB> base64 data <TAB> attributes as k=v,k=v
  while IFS=$'\t' read -r ack_id message_id data attrs; do
    payload="$(printf '%s' "$data" | python3 -c 'import base64,sys; sys.stdout.write(base64.b64decode(sys.stdin.read()).decode("utf-8"))')"
    echo "message $message_id: $payload"
    if [ "$dry_run" -eq 1 ]; then
      continue
    fi
    attribute_args=(--attribute="refundguard_replay_of=$message_id")
    if [ -n "$attrs" ]; then
      attribute_args=(--attribute="$attrs,refundguard_replay_of=$message_id")
    fi
    gcloud pubsub topics publish "$topic" --message="$payload" "${attribute_args[@]}" >/dev/null
    gcloud pubsub subscriptions ack "$sub" --ack-ids="$ack_id" >/dev/null
    replayed=$(( replayed + 1 ))
  done < <(printf '%s' "$pulled" | python3 -c '
import json, sys
for item in json.load(sys.stdin) or []:
    m = item["message"]
    attrs = ",".join(f"{k}={v}" for k, v in sorted((m.get("attributes") or {}).items()))
    print("\t".join([item["ackId"], m.get("messageId", ""), m.get("data", ""), attrs]))
')

  if [ "$dry_run" -eq 1 ]; then
    echo "dry run: nothing published or acknowledged (the pulled messages become visible again after the ack deadline)"
    exit 0
  fi
done
echo "replayed $replayed message(s)"
