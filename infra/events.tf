# Access-change events for the creator's platform (docs/integrating.md):
#
#   functions --publish--> access-events topic --push (OIDC, dedicated account)--> var.platform_webhook_url   (optional)
#                                              \          \--after max attempts--> events dead-letter topic --> pull subscription
#                                               \--pull--> platform pull subscription, for var.platform_subscriber_members  (optional)
#   Cloud Scheduler --(OIDC)--> events_sweep function: publishes what the Firestore outbox still holds
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

resource "google_pubsub_topic" "events_dead_letter" {
  # checkov:skip=CKV_GCP_83: reason: the same events as the access-events topic (see there); Google-managed encryption is sufficient.
  count = local.platform_push ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-access-events-dead-letter"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "platform_push" {
  count = local.platform_push ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-access-events-push"
  topic   = google_pubsub_topic.events.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  enable_message_ordering    = true

  expiration_policy {
    ttl = "" # never expire, even without traffic
  }

  retry_policy {
    minimum_backoff = var.platform_push_minimum_backoff
    maximum_backoff = var.platform_push_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter[0].id
    max_delivery_attempts = var.platform_push_max_delivery_attempts
  }

  push_config {
    push_endpoint = var.platform_webhook_url

    oidc_token {
      service_account_email = google_service_account.events_push[0].email
      audience              = var.platform_webhook_url
    }
  }

  depends_on = [google_service_account_iam_member.events_push_token_creator]
}

# Events the webhook refused platform_push_max_delivery_attempts times wait here (7 days).
resource "google_pubsub_subscription" "events_dead_letter" {
  count = local.platform_push ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-access-events-dead-letter"
  topic   = google_pubsub_topic.events_dead_letter[0].id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: publish to the dead-letter topic, and
# subscribe to (acknowledge on) the push subscription.
resource "google_pubsub_topic_iam_member" "events_dead_letter_publisher" {
  count = local.platform_push ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.events_dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "events_dead_letter_source_subscriber" {
  count = local.platform_push ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.platform_push[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_monitoring_alert_policy" "events_dead_letters" {
  count = local.platform_push ? 1 : 0

  project      = var.project_id
  display_name = "${var.name_prefix}: access events dead-lettered"
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "Undelivered messages in ${google_pubsub_subscription.events_dead_letter[0].name}"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.events_dead_letter[0].name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The platform's webhook refused access events ${var.platform_push_max_delivery_attempts} times; they were dead-lettered. Fix the webhook, then replay them: see docs/integrating.md, \"Replaying\". They are kept 7 days."
  }

  notification_channels = var.alert_notification_channels

  depends_on = [google_project_service.apis]
}

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

# ---------------------------------------------------------------------------------------------------
# The sweep: Cloud Scheduler calls the events_sweep function (invoker grant in iam.tf)
# ---------------------------------------------------------------------------------------------------

resource "google_service_account" "events_scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-sweep-sched"
  display_name = "refundguard Cloud Scheduler caller of the events sweep"
  description  = "OIDC identity of the events sweep's Cloud Scheduler job; its only grant is run.invoker on the events sweep function."

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "events_sweep" {
  project     = var.project_id
  region      = var.region
  name        = local.function_names["events_sweep"]
  description = "Publishes the access-change events left in the Firestore outbox (docs/integrating.md)."
  schedule    = var.events_sweep_schedule
  time_zone   = "Etc/UTC"

  # The sweep stops starting work after FIRESTORE_DEADLINE_SECONDS; the next run is its retry.
  attempt_deadline = "${var.function_timeout_seconds + 30}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    uri         = google_cloudfunctions2_function.function["events_sweep"].service_config[0].uri
    http_method = "POST"

    oidc_token {
      service_account_email = google_service_account.events_scheduler.email
      audience              = google_cloudfunctions2_function.function["events_sweep"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.events_sweep_invoker]
}
