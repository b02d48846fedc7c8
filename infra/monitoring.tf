# Alerts worth waking someone for. Notification channels are optional (var.alert_notification_channels);
# without them incidents still open in Cloud Monitoring.

# Dead-lettered messages have one alert per push subscription (push_subscriptions.tf).

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
