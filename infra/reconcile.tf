# The reconciler (docs/reconcile.md): Cloud Scheduler calls it every var.reconcile_schedule with an
# OIDC token of its own identity; the admin function may call it too (POST /reconciliation:run),
# with an ID token of the admin's runtime account. Nobody else may invoke it.
#
#   Cloud Scheduler --(OIDC)--> reconcile function <--(ID token)-- admin function
#                                 |-> one work message per tenant x source on the work topic
#                                     (reconcile_worker.tf: the worker lists voids, Apple's history,
#                                     answers refund requests)

# Its Cloud Scheduler job, the job's account and invoker grant: local.scheduled_calls.reconcile
# (scheduler.tf).

# POST /reconciliation:run: the admin function's runtime account invokes the reconciler (an ID
# token whose audience is local.reconcile_url). Its only grant beyond the common ones.
resource "google_cloud_run_service_iam_member" "reconcile_admin_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["reconcile"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.function["admin"].member
}
