# Refund alerts for operators (docs/alerts.md). The events sweep runs the checks; each alert it
# sends (once) is one WARNING log line carrying jsonPayload.alert_kind and tenant. A log-based
# metric counts those lines by kind and tenant, and one alert policy per kind opens an incident per
# tenant, notifying the email addresses of var.alert_emails, the Slack channel of
# var.alert_slack_channel (or var.alert_slack_channel_name) and var.alert_notification_channels.
#
# The same alerts reach platforms as events on the access-events topic (docs/integrating.md).

locals {
  # kind => display name, and what to do (shown in the incident)
  refund_alert_kinds = {
    refund_request_deadline_near = {
      title = "refund request near its deadline"
      doc   = "A store's refund request has less than `alert_deadline_hours` left and no answer (pending, waiting for usage data, or unanswerable). Report the purchase's consumption (POST /entitlements:consumption) or answer it in the store's console before the deadline. docs/alerts.md."
    }
    refund_request_expired = {
      title = "refund request expired unanswered"
      doc   = "A store's refund request passed its deadline without an answer: the store decides alone. Find why (its reason in GET /refund-requests) so the next one is answered. docs/alerts.md."
    }
    refund_spike = {
      title = "refund spike"
      doc   = "A tenant's (or a product's) refunds today are above their baseline, max(alert_spike_min_refunds, 2 x mean + 3 x stddev of the 28 previous days). Look for what changed today (a release, a price, fraud, a store outage). docs/alerts.md."
    }
    reconciliation_failing = {
      title = "reconciliation failing"
      doc   = "The reconciler has not run, or not succeeded, for a tenant for over `alert_reconcile_minutes`: missed refunds are not caught and refund requests not answered. Read GET /reconciliation/runs and the reconciler's ERROR lines. docs/alerts.md."
    }
    store_access_broken = {
      title = "store access broken"
      doc   = "The latest check of a tenant's store access says the store refuses refundguard (not_invited, key_refused, wrong_bundle), or a store API that was ok is now api_off or no_key. Fix it as the check says, then POST /tenants/{id}:check-access. docs/alerts.md."
    }
  }

  refund_alert_channels = concat(
    var.alert_notification_channels,
    [for channel in google_monitoring_notification_channel.alert_email : channel.name],
    var.alert_slack_channel == "" ? [] : [var.alert_slack_channel],
    [for channel in data.google_monitoring_notification_channel.slack : channel.name],
  )
}

resource "google_monitoring_notification_channel" "alert_email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "${var.name_prefix}: refund alerts to ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }

  depends_on = [google_project_service.apis]
}

data "google_monitoring_notification_channel" "slack" {
  count = var.alert_slack_channel_name == "" ? 0 : 1

  project      = var.project_id
  type         = "slack"
  display_name = var.alert_slack_channel_name
}

resource "google_logging_metric" "refund_alerts" {
  project     = var.project_id
  name        = "${var.name_prefix}-refund-alerts"
  description = "Alerts sent by the events sweep (one log line per alert, sent once), by kind and tenant."
  filter      = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names.events_sweep}\" AND jsonPayload.alert_kind:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"

    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "The alert's kind (docs/alerts.md)."
    }

    labels {
      key         = "tenant"
      value_type  = "STRING"
      description = "The tenant the alert is about."
    }
  }

  label_extractors = {
    kind   = "EXTRACT(jsonPayload.alert_kind)"
    tenant = "EXTRACT(jsonPayload.tenant)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "refund_alerts" {
  for_each = local.refund_alert_kinds

  project      = var.project_id
  display_name = "${var.name_prefix}: ${each.value.title}"
  combiner     = "OR"
  severity     = contains(["refund_request_deadline_near", "refund_spike"], each.key) ? "WARNING" : "CRITICAL"

  conditions {
    display_name = "${each.value.title} (per tenant)"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.refund_alerts.name}\" AND metric.label.kind = \"${each.key}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.tenant"]
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.doc
  }

  notification_channels = local.refund_alert_channels
}
