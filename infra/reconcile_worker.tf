# A fanned-out reconciliation (docs/reconcile.md): the reconcile function (Cloud Scheduler, or the
# admin's POST /reconciliation:run) publishes one work message per tenant x source to the work
# topic; Pub/Sub pushes each to the worker, which does one page within RECONCILE_BUDGET_SECONDS
# and publishes the next page to the same topic. Tenants live in Firestore: nothing here is per
# tenant.
#
#   reconcile function --publish--> reconcile work topic --push (OIDC)--> reconcile worker
#                                        ^                                     |
#                                        \----- publish the next page ---------/
#                                   \--after max_delivery_attempts--> dead-letter topic --> pull subscription (7 days)
#
# The push subscription, its dead letters and their alert: local.push_subscriptions.reconcile_work
# (push_subscriptions.tf). The worker's function entry: local.functions.reconcile_worker
# (functions.tf). Its runtime account has the common grants (iam.tf: Firestore user, publisher on
# the access-events topic), the Apple key secret (secrets.tf: it calls Apple), and here: publisher
# on the work topic. The reconcile function's account gets publisher on the work topic here too.

locals {
  # The worker stops starting work (and within a page, applying voids) after this: half the
  # function's timeout, so a page's writes finish well before it; the push subscription's ack
  # deadline (timeout + 10 s) is above both.
  reconcile_worker_budget_seconds = max(5, floor(var.function_timeout_seconds / 2))
  # The worker's deterministic run.app URL: the push subscription's OIDC audience, which the
  # worker checks too (RECONCILE_PUSH_AUDIENCE).
  reconcile_worker_audience = "https://${local.function_names.reconcile_worker}-${data.google_project.this.number}.${var.region}.run.app"
}

resource "google_pubsub_topic" "reconcile_work" {
  # checkov:skip=CKV_GCP_83: reason: work messages name a run id, a tenant id, a source (package or bundle id, environment) and a page number, nothing about customers; kept at most 7 days; Google-managed encryption is sufficient and a CMEK key would add a KMS dependency to every publish.
  project = var.project_id
  name    = "${var.name_prefix}-reconcile-work"

  # A message not delivered within a day is pointless: the next scheduled run resumes every
  # source from its cursor.
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

# The reconcile function publishes the run's first messages, the worker each next page: publisher
# on this topic only.
resource "google_pubsub_topic_iam_member" "reconcile_work_publisher" {
  for_each = toset(["reconcile", "reconcile_worker"])

  project = var.project_id
  topic   = google_pubsub_topic.reconcile_work.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.function[each.key].member
}

# The push identity: its only grant is run.invoker on the worker.
resource "google_service_account" "reconcile_push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-recon-push"
  display_name = "refundguard Pub/Sub push to the reconciliation worker"
  description  = "OIDC identity of the reconciliation work push subscription; its only grant is run.invoker on the reconciliation worker."

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_service_iam_member" "reconcile_worker_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["reconcile_worker"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.reconcile_push.member
}

# Lets Pub/Sub mint OIDC tokens for the push identity (projects created before 2021-04-08; see
# var.grant_pubsub_token_creator). Scoped to this one account.
resource "google_service_account_iam_member" "reconcile_push_token_creator" {
  count = var.grant_pubsub_token_creator ? 1 : 0

  service_account_id = google_service_account.reconcile_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_pubsub_topic.reconcile_work]
}

# GET /reconciliation/runs for one tenant (ReconcileState.recent_runs(tenant=...)): the tenant's
# records, newest first.
resource "google_firestore_index" "reconcile_runs_by_tenant" {
  project    = var.project_id
  database   = google_firestore_database.ledger.name
  collection = "reconcile_runs"

  fields {
    field_path = "tenant"
    order      = "ASCENDING"
  }

  fields {
    field_path = "started_ms"
    order      = "DESCENDING"
  }
}
