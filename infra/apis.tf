# Every API the deployment uses. disable_on_destroy = false: destroying this stack must never switch
# off an API that something else in the project may depend on.
locals {
  required_apis = toset([
    "androidpublisher.googleapis.com",     # the Play Developer API (PLAY_DEVELOPER_API)
    "artifactregistry.googleapis.com",     # Cloud Functions stores the built images here
    "bigquery.googleapis.com",             # refund insight's dataset and views (insight.tf)
    "cloudbuild.googleapis.com",           # Cloud Functions builds the source with Cloud Build
    "cloudfunctions.googleapis.com",       # the three functions
    "cloudresourcemanager.googleapis.com", # data.google_project (project number)
    "cloudscheduler.googleapis.com",       # the events sweep's schedule
    "firestore.googleapis.com",            # the entitlement ledger
    "iam.googleapis.com",                  # service accounts
    "cloudkms.googleapis.com",             # tenants' Apple keys, sealed (tenant_keys.tf)
    "iamcredentials.googleapis.com",       # tokens of the Play API account (play_api_account.tf); push OIDC tokens
    "logging.googleapis.com",              # function logs
    "monitoring.googleapis.com",           # the dead-letter alert policy
    "pubsub.googleapis.com",               # RTDN and access-events topics, their subscriptions
    "run.googleapis.com",                  # Cloud Functions gen2 runs on Cloud Run
    "secretmanager.googleapis.com",        # the App Store Server API key (secrets.tf)
    "storage.googleapis.com",              # the function source bucket
  ])
}

resource "google_project_service" "apis" {
  for_each = local.required_apis

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.apis]
}
