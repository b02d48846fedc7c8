# The three HTTP functions: one source archive, one entry point and one service account each.
# environment_variables are the exact names refundguard/config.py reads (COMMON_ENV + FUNCTION_ENV);
# tests/test_infra.py checks that each function sets exactly its set.

locals {
  function_names = {
    play_notifications  = "${var.name_prefix}-play"
    apple_notifications = "${var.name_prefix}-apple"
    admin               = "${var.name_prefix}-admin"
  }

  # Deterministic URLs of the admin function, computed without referring to the function itself
  # (a function cannot read its own URL into its own environment: that is a dependency cycle).
  #   cloudfunctions.net: the URL `gcloud functions describe` shows and admins use as token audience;
  #   run.app:            Cloud Run's deterministic URL https://SERVICE-PROJECT_NUMBER.REGION.run.app.
  admin_function_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.function_names.admin}"
  admin_run_app_url  = "https://${local.function_names.admin}-${data.google_project.this.number}.${var.region}.run.app"
  admin_audiences    = distinct(concat([local.admin_function_url, local.admin_run_app_url], var.admin_extra_audiences))

  apple_production = contains(var.apple_environments, "Production")
}

resource "google_cloudfunctions2_function" "play" {
  name        = local.function_names.play_notifications
  project     = var.project_id
  location    = var.region
  description = "Google Play Real-time Developer Notifications, pushed by Pub/Sub (OIDC)."

  build_config {
    runtime         = var.python_runtime
    entry_point     = "play_notifications"
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["play_notifications"].email
    ingress_settings                 = var.play_ingress_settings
    all_traffic_on_latest_revision   = true
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    max_instance_count               = var.function_max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1

    environment_variables = {
      GOOGLE_CLOUD_PROJECT       = var.project_id
      FIRESTORE_DATABASE         = google_firestore_database.ledger.name
      FIRESTORE_DEADLINE_SECONDS = tostring(var.firestore_deadline_seconds)
      PLAY_PACKAGE_NAMES         = join(",", var.play_package_names)
      # The function checks the push identity's OIDC token itself too (not only Cloud Run IAM).
      PLAY_PUSH_SERVICE_ACCOUNTS = google_service_account.play_push.email
      PLAY_PUSH_CERTS_URL        = var.id_token_certs_url
    }
  }

  lifecycle {
    precondition {
      condition     = var.firestore_deadline_seconds < var.function_timeout_seconds
      error_message = "firestore_deadline_seconds must be below function_timeout_seconds so a slow Firestore ends in a clean 503."
    }
  }

  depends_on = [google_project_service.apis, google_project_iam_member.function_datastore_user]
}

resource "google_cloudfunctions2_function" "apple" {
  # checkov:skip=CKV_GCP_124: reason: Apple's servers reach this endpoint over the internet, so ingress must allow all traffic; the function accepts only JWS payloads whose chain ends in the pinned Apple Root CA - G3.
  name        = local.function_names.apple_notifications
  project     = var.project_id
  location    = var.region
  description = "App Store Server Notifications V2 (public endpoint; every payload is a JWS checked against Apple Root CA - G3)."

  build_config {
    runtime         = var.python_runtime
    entry_point     = "apple_notifications"
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["apple_notifications"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    max_instance_count               = var.function_max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1

    environment_variables = {
      GOOGLE_CLOUD_PROJECT       = var.project_id
      FIRESTORE_DATABASE         = google_firestore_database.ledger.name
      FIRESTORE_DEADLINE_SECONDS = tostring(var.firestore_deadline_seconds)
      APPLE_BUNDLE_IDS           = join(",", var.apple_bundle_ids)
      APPLE_ENVIRONMENTS         = join(",", var.apple_environments)
      APPLE_APP_APPLE_ID         = var.apple_app_apple_id
      # Relative to the function's source root; the file is the checked certificate (apple_root.tf).
      APPLE_ROOT_CERTS = local.apple_root_ca_g3_path
    }
  }

  lifecycle {
    precondition {
      condition     = !local.apple_production || var.apple_app_apple_id != ""
      error_message = "apple_app_apple_id is required when apple_environments contains Production."
    }
    precondition {
      condition     = var.firestore_deadline_seconds < var.function_timeout_seconds
      error_message = "firestore_deadline_seconds must be below function_timeout_seconds so a slow Firestore ends in a clean 503."
    }
  }

  depends_on = [google_project_service.apis, google_project_iam_member.function_datastore_user]
}

resource "google_cloudfunctions2_function" "admin" {
  # checkov:skip=CKV_GCP_124: reason: admins call the API from their own machines (gcloud ID token), not from a VPC; access is gated by Cloud Run IAM (only var.admin_members may invoke) and then by the ADMIN_EMAILS check on the verified token.
  name        = local.function_names.admin
  project     = var.project_id
  location    = var.region
  description = "Admin API (look up, re-grant, revoke). Cloud Run IAM admits var.admin_members; the code then checks the ID token against ADMIN_EMAILS."

  build_config {
    runtime         = var.python_runtime
    entry_point     = "admin"
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function["admin"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    max_instance_count               = var.function_max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1

    environment_variables = {
      GOOGLE_CLOUD_PROJECT       = var.project_id
      FIRESTORE_DATABASE         = google_firestore_database.ledger.name
      FIRESTORE_DEADLINE_SECONDS = tostring(var.firestore_deadline_seconds)
      ADMIN_AUDIENCES            = join(",", local.admin_audiences)
      ADMIN_EMAILS               = join(",", var.admin_emails)
      ADMIN_CERTS_URL            = var.id_token_certs_url
    }
  }

  lifecycle {
    precondition {
      condition     = var.firestore_deadline_seconds < var.function_timeout_seconds
      error_message = "firestore_deadline_seconds must be below function_timeout_seconds so a slow Firestore ends in a clean 503."
    }
  }

  depends_on = [google_project_service.apis, google_project_iam_member.function_datastore_user]
}

# After apply: warn (not fail) when the admin service answers on a URL that ADMIN_AUDIENCES lacks,
# e.g. a project whose Cloud Run URLs are the legacy hashed form. Add it to admin_extra_audiences.
check "admin_audiences_cover_service_uri" {
  assert {
    condition     = contains(local.admin_audiences, google_cloudfunctions2_function.admin.service_config[0].uri)
    error_message = "ADMIN_AUDIENCES does not contain the admin service URI ${google_cloudfunctions2_function.admin.service_config[0].uri}; tokens minted for that URL will be refused. Add it to admin_extra_audiences and apply again."
  }
}
