# The functions Cloud Scheduler calls, one entry per function below, keyed by entry point: the
# events sweep (events.tf, docs/integrating.md) and the reconciler (reconcile.tf, docs/reconcile.md).
# Each job calls its function with an OIDC token of its own service account, whose only grant is
# run.invoker on that function.
#
#   Cloud Scheduler --(OIDC, account scheduler[KEY])--> function[KEY]

locals {
  #   account_id, account_name, account_description: the job's service account;
  #   description: the job's; schedule: cron, in UTC.
  scheduled_calls = {
    events_sweep = {
      account_id          = "${var.name_prefix}-sweep-sched"
      account_name        = "refundguard Cloud Scheduler caller of the events sweep"
      account_description = "OIDC identity of the events sweep's Cloud Scheduler job; its only grant is run.invoker on the events sweep function."
      description         = "Publishes the access-change events left in the Firestore outbox (docs/integrating.md)."
      schedule            = var.events_sweep_schedule
    }
    reconcile = {
      account_id          = "${var.name_prefix}-recon-sched"
      account_name        = "refundguard Cloud Scheduler caller of the reconciler"
      account_description = "OIDC identity of the reconciler's Cloud Scheduler job; its only grant is run.invoker on the reconcile function."
      description         = "Catches refunds that notifications missed and answers pending refund requests (docs/reconcile.md)."
      schedule            = var.reconcile_schedule
    }
  }
}

resource "google_service_account" "scheduler" {
  for_each = local.scheduled_calls

  project      = var.project_id
  account_id   = each.value.account_id
  display_name = each.value.account_name
  description  = each.value.account_description

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  for_each = local.scheduled_calls

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler[each.key].member
}

resource "google_cloud_scheduler_job" "function" {
  for_each = local.scheduled_calls

  project     = var.project_id
  region      = var.region
  name        = local.function_names[each.key]
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = "Etc/UTC"

  # A run stops starting work before the function's timeout (the sweep after
  # FIRESTORE_DEADLINE_SECONDS, the reconciler between pages); the next run is its retry.
  attempt_deadline = "${var.function_timeout_seconds + 30}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    uri         = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    http_method = "POST"

    oidc_token {
      service_account_email = google_service_account.scheduler[each.key].email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.scheduler_invoker]
}

# The jobs, their accounts and invoker grants were written once per function before (events.tf,
# reconcile.tf, iam.tf); these keep them (no destroy and re-create).
moved {
  from = google_service_account.events_scheduler
  to   = google_service_account.scheduler["events_sweep"]
}

moved {
  from = google_service_account.reconcile_scheduler
  to   = google_service_account.scheduler["reconcile"]
}

moved {
  from = google_cloud_run_service_iam_member.events_sweep_invoker
  to   = google_cloud_run_service_iam_member.scheduler_invoker["events_sweep"]
}

moved {
  from = google_cloud_run_service_iam_member.reconcile_scheduler_invoker
  to   = google_cloud_run_service_iam_member.scheduler_invoker["reconcile"]
}

moved {
  from = google_cloud_scheduler_job.events_sweep
  to   = google_cloud_scheduler_job.function["events_sweep"]
}

moved {
  from = google_cloud_scheduler_job.reconcile
  to   = google_cloud_scheduler_job.function["reconcile"]
}
