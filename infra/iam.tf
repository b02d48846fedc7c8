# Least privilege:
#   - one runtime service account per deployed function, each with roles/datastore.user on the
#     project and roles/pubsub.publisher on the access-events topic only (every function changes
#     entitlements, the sweep publishes their events); those that call the Play Developer API also
#     hold Token Creator on its one account, to call it as that account (play_api_account.tf);
#   - one push identity for Pub/Sub, allowed to invoke the Play function only;
#   - invokers: Play = the push identity, Apple = allUsers (JWS-verified), admin = the admins' own
#     service accounts and var.admin_members, events sweep = its Cloud Scheduler identity
#     (scheduler.tf), reconciler = its Cloud Scheduler identity (scheduler.tf) and the admin
#     function's account (POST /reconciliation:run; reconcile.tf), the reconciliation worker = its
#     Pub/Sub push identity (reconcile_worker.tf, which also lets the reconciler and the worker
#     publish on the work topic alone), the optional console = allUsers
#     (a browser cannot pass Cloud Run IAM; the code checks the Google ID token's audience and
#     ADMIN_EMAILS on every API call; docs/console.md).

locals {
  function_roles = toset(["roles/datastore.user"])

  function_account_roles = {
    for pair in setproduct(keys(local.enabled_function_names), local.function_roles) :
    "${pair[0]}/${pair[1]}" => { function = pair[0], role = pair[1] }
  }

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# One per deployed function (functions.tf), keyed by entry point; the account id is the function's
# name.
resource "google_service_account" "function" {
  for_each = local.enabled_function_names

  project      = var.project_id
  account_id   = each.value
  display_name = "refundguard ${local.functions[each.key].title}"
  description  = "Runtime identity of the ${local.functions[each.key].title}: Firestore read/write (roles/datastore.user), nothing else."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "function_datastore_user" {
  for_each = local.function_account_roles

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.function[each.value.function].member
}

# Every function publishes its access-change events (the outbox, docs/integrating.md): on this one
# topic only.
resource "google_pubsub_topic_iam_member" "events_publisher" {
  for_each = local.function_names

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.function[each.key].member
}

# ---------------------------------------------------------------------------------------------------
# Play: only the Pub/Sub push identity may invoke it.
# ---------------------------------------------------------------------------------------------------

resource "google_service_account" "play_push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-play-push"
  display_name = "refundguard Pub/Sub push to the Play function"
  description  = "OIDC identity of the RTDN push subscription; its only grant is run.invoker on the Play function."

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_service_iam_member" "play_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["play_notifications"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.play_push.member
}

# Lets Pub/Sub mint OIDC tokens for the push identity (required in projects created before
# 2021-04-08; newer projects' Pub/Sub service agent already can). Scoped to this one account.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  count = var.grant_pubsub_token_creator ? 1 : 0

  service_account_id = google_service_account.play_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_pubsub_topic.rtdn]
}

# ---------------------------------------------------------------------------------------------------
# Apple: public. Apple's servers call it without credentials; every request body is a JWS whose
# certificate chain must end in Apple Root CA - G3 and whose bundle id / environment must match.
# ---------------------------------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "apple_public_invoker" {
  # checkov:skip=CKV_GCP_102: reason: App Store Server Notifications arrive from Apple without Google credentials, so this endpoint must be public; its security is the JWS signature check against the pinned Apple Root CA - G3 (plus bundle id and environment checks) in the function.
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["apple_notifications"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# ---------------------------------------------------------------------------------------------------
# Admin: the admins' own service accounts and var.admin_members (then ADMIN_EMAILS in the code).
# Each person in var.admins gets a service account only they may impersonate: the admin CLI asks
# IAM Credentials for its ID token (audience: the function's URL), so the history names someone.
# ---------------------------------------------------------------------------------------------------

locals {
  # a-<local part>-<6 hex>: 6-30 characters, starts with a letter, one account per person.
  admin_account_ids = {
    for email in var.admins : email => format(
      "a-%s-%s",
      trim(substr(replace(lower(split("@", email)[0]), "/[^a-z0-9]+/", "-"), 0, 18), "-"),
      substr(sha256(lower(email)), 0, 6),
    )
  }
  admin_invokers = distinct(concat(
    [for email in var.admins : "serviceAccount:${google_service_account.admin[email].email}"],
    var.admin_members,
  ))
  admin_allow_list = distinct(concat(
    [for email in var.admins : google_service_account.admin[email].email],
    var.admin_emails,
  ))
  # In the console people sign in as themselves, so there the admins' own emails are allowed.
  console_allow_list = distinct(concat(var.admins, var.admin_emails))
}

resource "google_service_account" "admin" {
  for_each = local.admin_account_ids

  project      = var.project_id
  account_id   = each.value
  display_name = "refundguard admin: ${each.key}"
  description  = "Acts for ${each.key} through the refundguard admin CLI; only they may impersonate it."
}

resource "google_service_account_iam_member" "admin_impersonation" {
  for_each = local.admin_account_ids

  service_account_id = google_service_account.admin[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "user:${each.key}"
}

resource "google_cloud_run_service_iam_member" "admin_invoker" {
  for_each = toset(local.admin_invokers)

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["admin"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

# ---------------------------------------------------------------------------------------------------
# Console (optional, var.console_oauth_client_id): public at the Cloud Run layer.
# A browser can pass neither a page load nor a cross-origin call's CORS preflight through Cloud Run
# IAM (neither carries an Authorization header), and IAP cannot be set on a Cloud Functions
# resource. So the function checks every API request itself: a Google-signed ID token whose
# audience is the console's OAuth client id (issued by Google Identity Services to the console's
# origin only) and whose verified email is on ADMIN_EMAILS; its page and files hold no data.
# ---------------------------------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "console_public_invoker" {
  # checkov:skip=CKV_GCP_102: reason: the admin console is opened in browsers, which cannot present Cloud Run IAM credentials (a page load and a CORS preflight carry no Authorization header), so this optional endpoint must be public; the function authenticates every API request itself (Google-signed ID token for the console's OAuth client id only, verified email on ADMIN_EMAILS) and its page holds no data; see docs/console.md.
  count = local.functions.admin_console.enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["admin_console"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
