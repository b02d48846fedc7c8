# Google Play Real-time Developer Notifications:
#   Play --publish--> rtdn topic --push (OIDC)--> Play function
#                                  \--after max_delivery_attempts--> dead-letter topic --> pull subscription (7 days)
# The push subscription, its dead letters and their alert: local.push_subscriptions.rtdn
# (push_subscriptions.tf).
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
