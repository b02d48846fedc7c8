# The one service account every function calls the Google Play Developer API as, so that a creator
# invites ONE account in their Play Console (the play_console_service_accounts output; docs/deploy.md,
# docs/tenants.md), whichever function makes the call.
#
#   - The account holds no role in this project at all: its only access is what each creator grants
#     it in their own Play Console ('View financial data', 'Manage orders and subscriptions').
#   - The functions that call the Play API (local.play_api_callers) impersonate it: each holds
#     roles/iam.serviceAccountTokenCreator on THIS account only (resource-level, never project-level)
#     and reads its email from PLAY_API_SERVICE_ACCOUNT (functions.tf); google-auth then mints its
#     tokens through the IAM Service Account Credentials API (apis.tf).
#   - No other principal may impersonate it, and it has no key.

locals {
  # The entry points that call the Play Developer API: those whose config.FUNCTION_ENV reads
  # PLAY_API_SERVICE_ACCOUNT (tests/unit/test_infra.py checks the two agree). play_notifications
  # verifies purchases and judges voids; admin and admin_console look orders up and check tenants'
  # access; reconcile lists voided purchases and answers refund reviews. A new caller (such as a
  # reconciliation worker) is added here and gets the variable in its environment.
  play_api_callers = ["play_notifications", "admin", "admin_console", "reconcile", "reconcile_worker"]

  # The deployed ones (the console is optional): their accounts may mint the Play API account's tokens.
  play_api_impersonators = toset([for name in local.play_api_callers : name if contains(keys(local.enabled_functions), name)])
}

resource "google_service_account" "play_api" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-play-api"
  display_name = "refundguard Play Developer API"
  description  = "The one account the functions call the Play Developer API as (impersonated); creators invite it in their Play Console. No project role."

  depends_on = [google_project_service.apis]
}

resource "google_service_account_iam_member" "play_api_token_creator" {
  for_each = local.play_api_impersonators

  service_account_id = google_service_account.play_api.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.function[each.key].member
}
