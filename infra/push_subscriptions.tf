# Push subscriptions with dead letters, one entry per subscription below, keyed by the topic they
# deliver from:
#
#   rtdn topic   --push (OIDC)--> Play function                                      (pubsub.tf)
#   events topic --push (OIDC)--> var.platform_webhook_url, when set                (events.tf)
#   reconcile work topic --push (OIDC)--> reconcile worker                 (reconcile_worker.tf)
#        \--after max_delivery_attempts--> KEY dead-letter topic --> pull subscription (7 days)
#
# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic and
# subscribe to (acknowledge on) the source subscription. Every dead-letter subscription has an
# alert (notification channels: var.alert_notification_channels).

locals {
  #   enabled: whether it is deployed (the platform's webhook is optional);
  #   topic: the source topic; name: the push subscription's; dead_letter: the dead-letter topic's
  #          and its pull subscription's;
  #   ack_deadline_seconds, ordered (by ordering key), minimum_backoff, maximum_backoff,
  #          max_delivery_attempts: delivery settings;
  #   push_endpoint, service_account_email, audience: where it pushes, with whose OIDC token;
  #   alert_name, alert_documentation: the dead-letter alert's.
  push_subscriptions = {
    rtdn = {
      enabled     = true
      topic       = google_pubsub_topic.rtdn.id
      name        = "${var.name_prefix}-play-rtdn-push"
      dead_letter = "${var.name_prefix}-play-rtdn-dead-letter"
      # At least the function's timeout, so Pub/Sub does not redeliver a message still being processed.
      ack_deadline_seconds  = min(600, var.function_timeout_seconds + 10)
      ordered               = false
      minimum_backoff       = var.pubsub_minimum_backoff
      maximum_backoff       = var.pubsub_maximum_backoff
      max_delivery_attempts = var.pubsub_max_delivery_attempts
      push_endpoint         = google_cloudfunctions2_function.function["play_notifications"].service_config[0].uri
      service_account_email = google_service_account.play_push.email
      # The function's deterministic URL, which it checks too (PLAY_PUSH_AUDIENCE, functions.tf).
      audience            = local.play_push_audience
      alert_name          = "${var.name_prefix}: Google Play notifications dead-lettered"
      alert_documentation = "RTDN messages failed ${var.pubsub_max_delivery_attempts} deliveries to the Play function and were dead-lettered. Check the function's ERROR logs, fix the cause, then replay them: see docs/deploy.md, \"Replaying dead letters\". They are kept 7 days."
    }

    events = {
      enabled     = local.platform_push
      topic       = google_pubsub_topic.events.id
      name        = "${var.name_prefix}-access-events-push"
      dead_letter = "${var.name_prefix}-access-events-dead-letter"
      # Every subscription of the events topic orders messages by their ordering key (events.tf).
      ack_deadline_seconds  = 60
      ordered               = true
      minimum_backoff       = var.platform_push_minimum_backoff
      maximum_backoff       = var.platform_push_maximum_backoff
      max_delivery_attempts = var.platform_push_max_delivery_attempts
      push_endpoint         = var.platform_webhook_url
      # The platform's webhook accepts tokens of this email only, with its own URL as audience.
      service_account_email = one(google_service_account.events_push[*].email)
      audience              = var.platform_webhook_url
      alert_name            = "${var.name_prefix}: access events dead-lettered"
      alert_documentation   = "The platform's webhook refused access events ${var.platform_push_max_delivery_attempts} times; they were dead-lettered. Fix the webhook, then replay them: see docs/integrating.md, \"Replaying\". They are kept 7 days."
    }

    reconcile_work = {
      enabled     = true
      topic       = google_pubsub_topic.reconcile_work.id
      name        = "${var.name_prefix}-reconcile-work-push"
      dead_letter = "${var.name_prefix}-reconcile-work-dead-letter"
      # Above the worker's timeout (and so its page budget): a page still at work is not sent again.
      ack_deadline_seconds  = min(600, var.function_timeout_seconds + 10)
      ordered               = false
      minimum_backoff       = var.pubsub_minimum_backoff
      maximum_backoff       = var.pubsub_maximum_backoff
      max_delivery_attempts = var.reconcile_work_max_delivery_attempts
      push_endpoint         = google_cloudfunctions2_function.function["reconcile_worker"].service_config[0].uri
      service_account_email = google_service_account.reconcile_push.email
      # The worker's deterministic URL, which it checks too (RECONCILE_PUSH_AUDIENCE, functions.tf).
      audience            = local.reconcile_worker_audience
      alert_name          = "${var.name_prefix}: reconciliation work dead-lettered"
      alert_documentation = "Reconciliation work messages failed ${var.reconcile_work_max_delivery_attempts} deliveries to the worker and were dead-lettered (a store API or Firestore kept failing, or the worker refused the push identity). Check the worker's ERROR logs and fix the cause; the next scheduled run resumes every source from its cursor, so replaying is optional: see docs/reconcile.md, \"Dead letters\". They are kept 7 days."
    }
  }

  # What is deployed: every subscription whose entry is enabled.
  enabled_push_subscriptions = { for key, subscription in local.push_subscriptions : key => subscription if subscription.enabled }
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83: reason: dead letters are messages of their source topic (Play notifications: package name, purchase token, notification type; access events: entitlement ids, statuses, store order ids), kept at most 7 days; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency to every publish.
  for_each = local.enabled_push_subscriptions

  project = var.project_id
  name    = each.value.dead_letter

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.enabled_push_subscriptions

  project = var.project_id
  name    = each.value.name
  topic   = each.value.topic

  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = "604800s"
  enable_message_ordering    = each.value.ordered

  expiration_policy {
    ttl = "" # never expire, even without traffic
  }

  retry_policy {
    minimum_backoff = each.value.minimum_backoff
    maximum_backoff = each.value.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  push_config {
    push_endpoint = each.value.push_endpoint

    oidc_token {
      service_account_email = each.value.service_account_email
      audience              = each.value.audience
    }
  }

  depends_on = [
    google_cloud_run_service_iam_member.play_invoker,
    google_cloud_run_service_iam_member.reconcile_worker_invoker,
    google_service_account_iam_member.pubsub_token_creator,
    google_service_account_iam_member.events_push_token_creator,
    google_service_account_iam_member.reconcile_push_token_creator,
  ]
}

# Dead letters wait here (7 days) for inspection and replay (Play: scripts/replay_dead_letters.sh;
# access events: docs/integrating.md, "Replaying").
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.enabled_push_subscriptions

  project = var.project_id
  name    = each.value.dead_letter
  topic   = google_pubsub_topic.dead_letter[each.key].id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.enabled_push_subscriptions

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source_subscriber" {
  for_each = local.enabled_push_subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_monitoring_alert_policy" "dead_letters" {
  for_each = local.enabled_push_subscriptions

  project      = var.project_id
  display_name = each.value.alert_name
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "Undelivered messages in ${google_pubsub_subscription.dead_letter[each.key].name}"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter[each.key].name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
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
    content   = each.value.alert_documentation
  }

  notification_channels = var.alert_notification_channels

  depends_on = [google_project_service.apis]
}

# These were written once per subscription before (pubsub.tf, events.tf, monitoring.tf); the moves
# keep them (no destroy and re-create).
moved {
  from = google_pubsub_topic.dead_letter
  to   = google_pubsub_topic.dead_letter["rtdn"]
}

moved {
  from = google_pubsub_topic.events_dead_letter[0]
  to   = google_pubsub_topic.dead_letter["events"]
}

moved {
  from = google_pubsub_subscription.play_push
  to   = google_pubsub_subscription.push["rtdn"]
}

moved {
  from = google_pubsub_subscription.platform_push[0]
  to   = google_pubsub_subscription.push["events"]
}

moved {
  from = google_pubsub_subscription.dead_letter
  to   = google_pubsub_subscription.dead_letter["rtdn"]
}

moved {
  from = google_pubsub_subscription.events_dead_letter[0]
  to   = google_pubsub_subscription.dead_letter["events"]
}

moved {
  from = google_pubsub_topic_iam_member.dead_letter_publisher
  to   = google_pubsub_topic_iam_member.dead_letter_publisher["rtdn"]
}

moved {
  from = google_pubsub_topic_iam_member.events_dead_letter_publisher[0]
  to   = google_pubsub_topic_iam_member.dead_letter_publisher["events"]
}

moved {
  from = google_pubsub_subscription_iam_member.dead_letter_source_subscriber
  to   = google_pubsub_subscription_iam_member.dead_letter_source_subscriber["rtdn"]
}

moved {
  from = google_pubsub_subscription_iam_member.events_dead_letter_source_subscriber[0]
  to   = google_pubsub_subscription_iam_member.dead_letter_source_subscriber["events"]
}

moved {
  from = google_monitoring_alert_policy.dead_letters
  to   = google_monitoring_alert_policy.dead_letters["rtdn"]
}

moved {
  from = google_monitoring_alert_policy.events_dead_letters[0]
  to   = google_monitoring_alert_policy.dead_letters["events"]
}
