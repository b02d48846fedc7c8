# Google Play Real-time Developer Notifications:
#   Play --publish--> rtdn topic --push (OIDC)--> Play function
#                                  \--after max_delivery_attempts--> dead-letter topic --> pull subscription (7 days)
# A push subscription rather than an Eventarc trigger: Terraform cannot give a Cloud Functions
# event_trigger a dead-letter policy (hashicorp/terraform-provider-google#25069).

resource "google_pubsub_topic" "rtdn" {
  # checkov:skip=CKV_GCP_83: reason: messages are Play notifications (package name, purchase token, notification type) kept at most 7 days; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency and cost to every publish.
  project = var.project_id
  name    = "${var.name_prefix}-play-rtdn"

  depends_on = [google_project_service.apis]
}

# Google Play publishes RTDNs as this Google-owned account.
resource "google_pubsub_topic_iam_member" "play_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.rtdn.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:google-play-developer-notifications@system.gserviceaccount.com"
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83: reason: same data as the RTDN topic (see there); Google-managed encryption is sufficient.
  project = var.project_id
  name    = "${var.name_prefix}-play-rtdn-dead-letter"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "play_push" {
  project = var.project_id
  name    = "${var.name_prefix}-play-rtdn-push"
  topic   = google_pubsub_topic.rtdn.id

  # At least the function's timeout, so Pub/Sub does not redeliver a message still being processed.
  ack_deadline_seconds       = min(600, var.function_timeout_seconds + 10)
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = "" # never expire, even without traffic
  }

  retry_policy {
    minimum_backoff = var.pubsub_minimum_backoff
    maximum_backoff = var.pubsub_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pubsub_max_delivery_attempts
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.function["play_notifications"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.play_push.email
      audience              = local.play_push_audience
    }
  }

  depends_on = [
    google_cloud_run_service_iam_member.play_invoker,
    google_service_account_iam_member.pubsub_token_creator,
  ]
}

# Dead letters wait here (7 days) for inspection and replay (scripts/replay_dead_letters.sh).
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-play-rtdn-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic and
# subscribe to (acknowledge on) the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.play_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
