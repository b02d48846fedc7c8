# Refund insight (docs/insight.md): every event on the events topic also lands in BigQuery through a
# Pub/Sub BigQuery subscription (no code of ours on the hot path), and views compute the figures:
#
#   functions --publish--> access-events topic --BigQuery subscription--> dataset.events (table)
#                                                 \--rows it could not write (5 attempts)--> insight dead-letter topic
#   dataset.events --> events_unique (one row per event id) --> facts --> figures (per tenant, product, period)
#   admin function / console --jobs.query, tenant as a query parameter--> figures
#
# The table's columns are the CloudEvent's top-level fields (use_table_schema: the JSON data's fields
# map to the columns of the same name; drop_unknown_fields: purchase_id and user_id, which the table
# does not have, are dropped) plus the write_metadata columns (subscription_name, message_id,
# publish_time, attributes). Its schema is infra/insight/events_schema.json, the views' SQL is
# infra/insight/*.sql: the local stand-in (dev/refundguard_dev/insight_local.py) runs the same files.
#
# Partitioned by day on `time` (the event's time, UTC): retention drops whole partitions, and a query
# that filters `time` reads only its days. Clustered by tenant, then type: every figure query reads
# one tenant (the row filter) and splits access events from refund-request events, so BigQuery reads
# that tenant's blocks only; the product is grouped by, never filtered on, so it is not a clustering
# column. The cost estimate: bench/bench_insight.py and docs/insight.md.

locals {
  insight_enabled = var.insight
  insight_dataset = "${replace(var.name_prefix, "-", "_")}_insight"
  insight_views   = ["events_unique", "facts", "figures"] # each over the ones before it
  insight_sql = {
    for name in local.insight_views : name => templatefile("${path.module}/insight/${name}.sql", {
      project = var.project_id
      dataset = local.insight_dataset
    })
  }
  # Read by the admin function and the console (config.INSIGHT_ENV).
  insight_env = {
    INSIGHT_ENGINE        = local.insight_enabled ? "bigquery" : "off"
    INSIGHT_DATASET       = local.insight_enabled ? "${var.project_id}.${local.insight_dataset}" : ""
    INSIGHT_LOCATION      = local.insight_enabled ? var.region : ""
    INSIGHT_API_BASE_URL  = "https://bigquery.googleapis.com"
    INSIGHT_CACHE_SECONDS = tostring(var.insight_cache_seconds)
  }
  # The functions that read the figures (GET /insight): BigQuery job user on the project (a query
  # is a job), data viewer on this dataset only.
  insight_readers = local.insight_enabled ? toset([for f in ["admin", "admin_console"] : f if contains(keys(local.enabled_function_names), f)]) : toset([])
}

resource "google_bigquery_dataset" "insight" {
  # checkov:skip=CKV_GCP_81: reason: the dataset holds the events already on the events topic (entitlement ids, statuses, order ids), no key material; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency to every write of the subscription.
  count = local.insight_enabled ? 1 : 0

  project     = var.project_id
  dataset_id  = local.insight_dataset
  location    = var.region
  description = "refundguard refund insight: the events topic's events (BigQuery subscription) and the figures' views (docs/insight.md)."

  delete_contents_on_destroy = false

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "insight_events" {
  # checkov:skip=CKV_GCP_80: reason: the same events as the events topic, no key material; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency to every write of the subscription.
  count = local.insight_enabled ? 1 : 0

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.insight[0].dataset_id
  table_id    = "events"
  description = "Every event published to the events topic, one row per Pub/Sub message (at least once: the views keep one row per event id)."
  schema      = file("${path.module}/insight/events_schema.json")

  time_partitioning {
    type          = "DAY"
    field         = "time"
    expiration_ms = var.insight_retention_days > 0 ? var.insight_retention_days * 86400000 : null
  }
  clustering = ["tenant", "type"]

  deletion_protection = true
}

# The views, in order (each reads the one before).
resource "google_bigquery_table" "insight_events_unique" {
  # checkov:skip=CKV_GCP_80: reason: a view stores no data (it reads the events table), so there is nothing for a CMEK key to encrypt.
  count = local.insight_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.insight[0].dataset_id
  table_id            = "events_unique"
  description         = "One row per event id (docs/insight.md)."
  deletion_protection = true

  view {
    query          = local.insight_sql.events_unique
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.insight_events]
}

resource "google_bigquery_table" "insight_facts" {
  # checkov:skip=CKV_GCP_80: reason: a view stores no data (it reads the events table), so there is nothing for a CMEK key to encrypt.
  count = local.insight_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.insight[0].dataset_id
  table_id            = "facts"
  description         = "One row per counted thing: purchase, refund, partial refund, reversal, re-grant, refund request received or settled (docs/insight.md)."
  deletion_protection = true

  view {
    query          = local.insight_sql.facts
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.insight_events_unique]
}

resource "google_bigquery_table" "insight_figures" {
  # checkov:skip=CKV_GCP_80: reason: a view stores no data (it reads the events table), so there is nothing for a CMEK key to encrypt.
  count = local.insight_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.insight[0].dataset_id
  table_id            = "figures"
  description         = "The figures per tenant, product and period (docs/insight.md); read with a WHERE on tenant."
  deletion_protection = true

  view {
    query          = local.insight_sql.figures
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.insight_facts]
}

# ---------------------------------------------------------------------------------------------------
# The BigQuery subscription: Pub/Sub's service agent writes the rows.
# ---------------------------------------------------------------------------------------------------

# The Pub/Sub service agent writes to this table only (BigQuery Data Editor on the table, and the
# metadata read it needs to check the table's schema).
resource "google_bigquery_table_iam_member" "insight_writer" {
  count = local.insight_enabled ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.insight[0].dataset_id
  table_id   = google_bigquery_table.insight_events[0].table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_service_agent
}

resource "google_pubsub_topic" "insight_dead_letter" {
  # checkov:skip=CKV_GCP_83: reason: dead letters are events of the events topic (entitlement ids, statuses, order ids) that BigQuery refused, kept 7 days; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency to every publish.
  count = local.insight_enabled ? 1 : 0

  project                    = var.project_id
  name                       = "${var.name_prefix}-insight-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

# Rows BigQuery refused five times wait here 7 days (replay: docs/insight.md).
resource "google_pubsub_subscription" "insight_dead_letter" {
  count = local.insight_enabled ? 1 : 0

  project                    = var.project_id
  name                       = "${var.name_prefix}-insight-dead-letter"
  topic                      = google_pubsub_topic.insight_dead_letter[0].id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "insight_dead_letter_publisher" {
  count = local.insight_enabled ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.insight_dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription" "insight" {
  count = local.insight_enabled ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-insight-bigquery"
  topic   = google_pubsub_topic.events.id

  bigquery_config {
    table               = "${var.project_id}.${google_bigquery_dataset.insight[0].dataset_id}.${google_bigquery_table.insight_events[0].table_id}"
    use_table_schema    = true
    drop_unknown_fields = true
    write_metadata      = true
  }

  message_retention_duration = "604800s"

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.insight_dead_letter[0].id
    max_delivery_attempts = 5
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_bigquery_table_iam_member.insight_writer,
    google_pubsub_topic_iam_member.insight_dead_letter_publisher,
  ]
}

# Pub/Sub's service agent acknowledges what it moves to the dead-letter topic.
resource "google_pubsub_subscription_iam_member" "insight_dead_letter_source_subscriber" {
  count = local.insight_enabled ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.insight[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# ---------------------------------------------------------------------------------------------------
# Readers: the admin function and the console (GET /insight). The per-tenant row filter is the
# query's WHERE tenant = @tenant (functions/refundguard/insight.py), after the admin API's role check.
# ---------------------------------------------------------------------------------------------------

resource "google_bigquery_dataset_iam_member" "insight_reader" {
  for_each = local.insight_readers

  project    = var.project_id
  dataset_id = google_bigquery_dataset.insight[0].dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.function[each.key].member
}

# A query is a BigQuery job of the project: job user is granted on the project (BigQuery has no
# narrower place for it); the data stays readable only through the dataset grant above.
resource "google_project_iam_member" "insight_job_user" {
  for_each = local.insight_readers

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.function[each.key].member
}

# Alert when the subscription dead-letters rows (a schema the table refuses, permissions).
resource "google_monitoring_alert_policy" "insight_dead_letters" {
  count = local.insight_enabled ? 1 : 0

  project      = var.project_id
  display_name = "${var.name_prefix}: insight rows dead-lettered"
  combiner     = "OR"

  conditions {
    display_name = "insight dead-letter subscription holds messages"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.insight_dead_letter[0].name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
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
    content   = "BigQuery refused events of the insight subscription 5 times (schema mismatch, permissions). Look at the subscription's state, fix the table or the grant, then replay the dead letters: see docs/insight.md, \"When rows are refused\". They are kept 7 days."
    mime_type = "text/markdown"
  }

  notification_channels = var.alert_notification_channels
}

output "insight_dataset" {
  description = "Refund insight's BigQuery dataset (PROJECT.DATASET): the events table and the figures views (docs/insight.md); empty with insight = false."
  value       = local.insight_enabled ? "${var.project_id}.${google_bigquery_dataset.insight[0].dataset_id}" : ""
}

output "insight_dead_letter_subscription" {
  description = "Events BigQuery refused 5 times (kept 7 days): replay them onto the events topic once fixed (docs/insight.md)."
  value       = local.insight_enabled ? google_pubsub_subscription.insight_dead_letter[0].id : ""
}
