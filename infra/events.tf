# Access-change events for the creator's platform (docs/integrating.md):
#
#   functions --publish--> access-events topic --push (OIDC, dedicated account)--> var.platform_webhook_url   (optional)
#                                              \          \--after max attempts--> events dead-letter topic --> pull subscription
#                                               \--pull--> platform pull subscription, for var.platform_subscriber_members  (optional)
#   Cloud Scheduler --(OIDC)--> events_sweep function: publishes what the Firestore outbox still holds
#
# The push subscription with its dead letters: local.push_subscriptions.events (push_subscriptions.tf);
# the sweep's Cloud Scheduler job: local.scheduled_calls.events_sweep (scheduler.tf).
#
# Every subscription orders messages by their ordering key (the entitlement id). The topic keeps
# messages var.events_message_retention after publication, so any subscription can be seeked back
# in time to replay them (gcloud pubsub subscriptions seek SUB --time=...).

locals {
  platform_push = var.platform_webhook_url != ""
}

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83: reason: events carry entitlement ids, statuses and store order ids, kept for the retention period only; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency to every publish.
  project = var.project_id
  name    = "${var.name_prefix}-access-events"

  message_retention_duration = var.events_message_retention

  lifecycle {
    precondition {
      condition     = length(var.platform_subscriber_members) == 0 || var.platform_pull_subscription
      error_message = "platform_subscriber_members needs platform_pull_subscription = true (they are granted the pull subscription)."
    }
  }

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------------------------------
# Push to the platform's webhook (var.platform_webhook_url set)
# ---------------------------------------------------------------------------------------------------

resource "google_service_account" "events_push" {
  count = local.platform_push ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-events-push"
  display_name = "refundguard Pub/Sub push to the platform webhook"
  description  = "OIDC identity of the access-events push subscription: the platform's webhook accepts tokens of this email only, with its own URL as audience. It holds no role."

  depends_on = [google_project_service.apis]
}

# Lets Pub/Sub mint OIDC tokens for the push identity (see grant_pubsub_token_creator).
resource "google_service_account_iam_member" "events_push_token_creator" {
  count = local.platform_push && var.grant_pubsub_token_creator ? 1 : 0

  service_account_id = google_service_account.events_push[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_pubsub_topic.events]
}

# The push subscription itself, its dead letters and their alert: local.push_subscriptions.events
# (push_subscriptions.tf).

# ---------------------------------------------------------------------------------------------------
# Pull subscription for the platform (var.platform_pull_subscription)
# ---------------------------------------------------------------------------------------------------

resource "google_pubsub_subscription" "platform_pull" {
  count = var.platform_pull_subscription ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-access-events-pull"
  topic   = google_pubsub_topic.events.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  enable_message_ordering    = true

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription_iam_member" "platform_subscriber" {
  for_each = var.platform_pull_subscription ? toset(var.platform_subscriber_members) : toset([])

  project      = var.project_id
  subscription = google_pubsub_subscription.platform_pull[0].name
  role         = "roles/pubsub.subscriber"
  member       = each.value
}
