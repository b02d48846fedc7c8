# The reconciler (docs/reconcile.md): Cloud Scheduler calls it every var.reconcile_schedule with an
# OIDC token of its own identity; the admin function may call it too (POST /reconciliation:run),
# with an ID token of the admin's runtime account. Nobody else may invoke it.
#
#   Cloud Scheduler --(OIDC)--> reconcile function <--(ID token)-- admin function
#                                 |-> Play voidedpurchases.list, orders.reviewrefund
#                                 |-> App Store Get Notification History, Send Consumption Information

resource "google_service_account" "reconcile_scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-recon-sched"
  display_name = "refundguard Cloud Scheduler caller of the reconciler"
  description  = "OIDC identity of the reconciler's Cloud Scheduler job; its only grant is run.invoker on the reconcile function."

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "reconcile" {
  project     = var.project_id
  region      = var.region
  name        = local.function_names["reconcile"]
  description = "Catches refunds that notifications missed and answers pending refund requests (docs/reconcile.md)."
  schedule    = var.reconcile_schedule
  time_zone   = "Etc/UTC"

  # A run stops starting pages before the function's timeout; the next run resumes from the cursors.
  attempt_deadline = "${var.function_timeout_seconds + 30}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    uri         = google_cloudfunctions2_function.function["reconcile"].service_config[0].uri
    http_method = "POST"

    oidc_token {
      service_account_email = google_service_account.reconcile_scheduler.email
      audience              = google_cloudfunctions2_function.function["reconcile"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.reconcile_scheduler_invoker]
}

resource "google_cloud_run_service_iam_member" "reconcile_scheduler_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["reconcile"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.reconcile_scheduler.member
}

# POST /reconciliation:run: the admin function's runtime account invokes the reconciler (an ID
# token whose audience is local.reconcile_url). Its only grant beyond the common ones.
resource "google_cloud_run_service_iam_member" "reconcile_admin_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["reconcile"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.function["admin"].member
}
