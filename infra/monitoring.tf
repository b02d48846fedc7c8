# Alerts worth waking someone for. Notification channels are optional (var.alert_notification_channels);
# without them incidents still open in Cloud Monitoring.

resource "google_monitoring_alert_policy" "dead_letters" {
  project      = var.project_id
  display_name = "${var.name_prefix}: Google Play notifications dead-lettered"
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "Undelivered messages in ${google_pubsub_subscription.dead_letter.name}"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
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
    content   = "RTDN messages failed ${var.pubsub_max_delivery_attempts} deliveries to the Play function and were dead-lettered. Check the function's ERROR logs, fix the cause, then replay them: see docs/deploy.md, \"Replaying dead letters\". They are kept 7 days."
  }

  notification_channels = var.alert_notification_channels

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "function_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}-function-errors"
  description = "ERROR (or worse) log entries of the refundguard functions."
  filter      = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name =~ \"^(${join("|", values(local.function_names))})$\" AND severity >= ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "function_errors" {
  project      = var.project_id
  display_name = "${var.name_prefix}: function errors"
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = "ERROR log entries in the refundguard functions"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A refundguard function logged an ERROR. See docs/deploy.md, \"What to watch\", for the log query."
  }

  notification_channels = var.alert_notification_channels
}
