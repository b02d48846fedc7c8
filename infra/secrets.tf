# The App Store Server API's private key (an App Store Connect In-App Purchase key, the .p8 text).
#
# Terraform creates the secret only, never a version: the key is added out of band, so it is never in
# Terraform state, a plan or this repository:
#   gcloud secrets versions add <apple_api_key_secret output> --data-file=SubscriptionKey_XXXX.p8
# The functions that read APPLE_API_PRIVATE_KEY (local.functions[*].secret_env) get it as that
# environment variable once var.apple_api_key_id is set (functions.tf), and may read this secret
# only (roles/secretmanager.secretAccessor on it, nothing project-wide).

locals {
  # Deployed entry points whose secret_env names the Apple key: the accessor grants below.
  apple_api_key_readers = toset([
    for name, function in local.functions : name
    if function.enabled && contains(keys(function.secret_env), "APPLE_API_PRIVATE_KEY")
  ])
}

resource "google_secret_manager_secret" "apple_api_key" {
  # Encrypted at rest with Google-managed keys; only the accessor grants below may read it.
  project   = var.project_id
  secret_id = "${var.name_prefix}-apple-api-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "apple_api_key_accessor" {
  for_each = local.apple_api_key_readers

  project   = var.project_id
  secret_id = google_secret_manager_secret.apple_api_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.key].member
}
