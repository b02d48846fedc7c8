# The HTTP functions: one source archive, one resource definition, one entry per function below.
# Each function has its own entry point, runtime service account (iam.tf) and environment.
# environment_variables plus secret_environment_variables are the exact names refundguard/config.py
# reads (COMMON_ENV + FUNCTION_ENV; config.SECRET_ENV come from Secret Manager); tests/unit/test_infra.py
# checks that each function sets exactly its set.
#
# Adding a function: a name in local.function_names, an entry in local.functions (same key = its
# entry point in functions/main.py and in config.FUNCTION_ENV), and its invoker grant in iam.tf.
# An entry whose `enabled` is false (the console without var.console_oauth_client_id) is not
# deployed: no function, no service account, no grants (local.enabled_functions).

locals {
  # The one place function names are written. They are also the runtime service account ids
  # (iam.tf) and appear in the monitoring filter and ADMIN_AUDIENCES. Kept apart from
  # local.functions because the admin function's environment is built from its own name.
  function_names = {
    play_notifications  = "${var.name_prefix}-play"
    apple_notifications = "${var.name_prefix}-apple"
    admin               = "${var.name_prefix}-admin"
    events_sweep        = "${var.name_prefix}-events-sweep"
    reconcile           = "${var.name_prefix}-reconcile"
    reconcile_worker    = "${var.name_prefix}-recon-worker"
    admin_console       = "${var.name_prefix}-console"
  }

  # Read by every function (config.COMMON_ENV).
  common_env = {
    GOOGLE_CLOUD_PROJECT       = var.project_id
    FIRESTORE_DATABASE         = google_firestore_database.ledger.name
    FIRESTORE_DEADLINE_SECONDS = tostring(var.firestore_deadline_seconds)
    TENANT_CACHE_SECONDS       = tostring(var.tenant_cache_seconds)
    # Every function changes entitlements (the sweep publishes their events): events.tf.
    EVENTS_TOPIC = google_pubsub_topic.events.id
  }

  # Looking up an order by its id at the stores (orders.get per package, Look Up Order ID per
  # bundle, verified against the pinned Apple root): read by the admin function, the console and the
  # reconciler (their entries' lookup_env). The Play API is called as one account, impersonated
  # (PLAY_API_SERVICE_ACCOUNT, play_api_account.tf).
  order_lookup_env = {
    PLAY_DEVELOPER_API         = local.play_developer_api
    PLAY_API_BASE_URL          = var.play_api_base_url
    PLAY_API_SERVICE_ACCOUNT   = google_service_account.play_api.email
    PLAY_PACKAGE_NAMES         = join(",", var.play_package_names)
    APPLE_API_KEY_ID           = var.apple_api_key_id
    APPLE_API_ISSUER_ID        = var.apple_api_issuer_id
    APPLE_API_BASE_URL         = var.apple_api_base_url
    APPLE_API_SANDBOX_BASE_URL = var.apple_api_sandbox_base_url
    APPLE_BUNDLE_IDS           = join(",", var.apple_bundle_ids)
    APPLE_APP_APPLE_ID         = var.apple_app_apple_id
    APPLE_ROOT_CERTS           = local.apple_root_ca_g3_path
    # Registered tenants' own Apple keys, sealed with this Cloud KMS key (tenant_keys.tf).
    TENANT_KEYS_KMS_KEY      = google_kms_crypto_key.tenant_keys.id
    TENANT_KEYS_KMS_BASE_URL = var.tenant_keys_kms_base_url
  }

  # What differs per function, keyed by entry point.
  #   enabled: whether it is deployed (only the console is optional);
  #   title:   how its runtime service account names it (iam.tf);
  #   ingress: Cloud Run ingress; the invoker grants are in iam.tf;
  #   lookup_env: local.order_lookup_env for the functions that look orders up, else {};
  #   env:     its own variables (config.FUNCTION_ENV), added to local.common_env and lookup_env;
  #   secret_env: variables read from Secret Manager (config.SECRET_ENV): name => secret id. Mounted
  #            only once the secret can hold a value (var.apple_api_key_id set; secrets.tf).
  functions = {
    play_notifications = {
      enabled     = true
      title       = "Google Play RTDN function"
      description = "Google Play Real-time Developer Notifications, pushed by Pub/Sub (OIDC)."
      ingress     = var.play_ingress_settings
      lookup_env  = {}
      env = {
        PLAY_PACKAGE_NAMES = join(",", var.play_package_names)
        # The function checks the push identity's OIDC token itself too (not only Cloud Run IAM).
        PLAY_PUSH_SERVICE_ACCOUNTS = google_service_account.play_push.email
        # The audience the push subscription's OIDC token names (pubsub.tf): the function's
        # deterministic run.app URL, which Cloud Run accepts and the function checks too.
        PLAY_PUSH_AUDIENCE  = local.play_push_audience
        PLAY_PUSH_CERTS_URL = var.id_token_certs_url
        # Purchases verified, subscription voids judged (docs/store-api.md).
        PLAY_DEVELOPER_API = local.play_developer_api
        PLAY_API_BASE_URL  = var.play_api_base_url
        # The one account the Play API is called as, impersonated (play_api_account.tf).
        PLAY_API_SERVICE_ACCOUNT = google_service_account.play_api.email
      }
      secret_env = {}
    }

    apple_notifications = {
      enabled     = true
      title       = "App Store notifications function"
      description = "App Store Server Notifications V2 (public endpoint; every payload is a JWS checked against Apple Root CA - G3)."
      # Apple's servers call from the internet; see the CKV_GCP_124 skip below.
      ingress    = "ALLOW_ALL"
      lookup_env = {}
      env = {
        APPLE_BUNDLE_IDS   = join(",", var.apple_bundle_ids)
        APPLE_ENVIRONMENTS = join(",", var.apple_environments)
        APPLE_APP_APPLE_ID = var.apple_app_apple_id
        # Relative to the function's source root; the file is the checked certificate (apple_root.tf).
        APPLE_ROOT_CERTS = local.apple_root_ca_g3_path
      }
      secret_env = {}
    }

    admin = {
      enabled     = true
      title       = "admin function"
      description = "Admin API (look up, re-grant, revoke). Cloud Run IAM admits the admins' service accounts and var.admin_members; the code then checks the ID token against ADMIN_EMAILS."
      # Admins call from their own machines; see the CKV_GCP_124 skip below.
      ingress = "ALLOW_ALL"
      # Look-up by order id.
      lookup_env = local.order_lookup_env
      env = {
        ADMIN_AUDIENCES = join(",", local.admin_audiences)
        ADMIN_EMAILS    = join(",", local.admin_allow_list)
        ADMIN_CERTS_URL = var.id_token_certs_url
        # POST /reconciliation:run calls the reconciler with an ID token for this URL (reconcile.tf).
        RECONCILE_URL = local.reconcile_url
        # GET /insight reads the figures from BigQuery (insight.tf).
        INSIGHT_ENGINE        = local.insight_env.INSIGHT_ENGINE
        INSIGHT_DATASET       = local.insight_env.INSIGHT_DATASET
        INSIGHT_LOCATION      = local.insight_env.INSIGHT_LOCATION
        INSIGHT_API_BASE_URL  = local.insight_env.INSIGHT_API_BASE_URL
        INSIGHT_CACHE_SECONDS = local.insight_env.INSIGHT_CACHE_SECONDS
        # The default tenant's refund policy, for POST /refund-requests:dry-run.
        REFUND_REQUESTS             = var.refund_requests
        REFUND_GRANT_BELOW_PERCENT  = tostring(var.refund_grant_below_percent)
        REFUND_DECLINE_FROM_PERCENT = tostring(var.refund_decline_from_percent)
        REFUND_RULES                = jsonencode(var.refund_rules)
      }
      secret_env = {
        APPLE_API_PRIVATE_KEY = google_secret_manager_secret.apple_api_key.secret_id
      }
    }

    events_sweep = {
      enabled     = true
      title       = "events sweep function"
      description = "Publishes the access-change events left in the Firestore outbox and runs the alert checks (called by Cloud Scheduler, events.tf, alerts.tf)."
      # Called by Cloud Scheduler in this project only (IAM: its own identity, scheduler.tf).
      ingress    = var.events_sweep_ingress_settings
      lookup_env = {}
      env = {
        EVENTS_SWEEP_GRACE_SECONDS = tostring(var.events_sweep_grace_seconds)
        # The alert checks it runs after the sweep (alerts.tf, docs/alerts.md).
        ALERTS                  = var.refund_alerts ? "on" : "off"
        ALERT_DEADLINE_HOURS    = tostring(var.alert_deadline_hours)
        ALERT_SPIKE_MIN_REFUNDS = tostring(var.alert_spike_min_refunds)
        ALERT_RECONCILE_MINUTES = tostring(var.alert_reconcile_minutes)
      }
      secret_env = {}
    }

    reconcile = {
      enabled     = true
      title       = "reconciler function"
      description = "Catches refunds notifications missed (Play voided purchases, Apple notification history) and answers the stores' refund requests by policy (called by Cloud Scheduler and the admin function, reconcile.tf)."
      # Cloud Scheduler and the admin function call it; only their identities may invoke (iam.tf).
      ingress = var.reconcile_ingress_settings
      # The same store API settings as the look-up: voided purchases, notification history, answers.
      lookup_env = local.order_lookup_env
      env = {
        APPLE_ENVIRONMENTS        = join(",", var.apple_environments)
        RECONCILE_OVERLAP_MINUTES = tostring(var.reconcile_overlap_minutes)
        # The run stops starting pages this long before the function's timeout; the next resumes.
        RECONCILE_BUDGET_SECONDS    = tostring(var.function_timeout_seconds - 15)
        REFUND_REQUESTS             = var.refund_requests
        REFUND_GRANT_BELOW_PERCENT  = tostring(var.refund_grant_below_percent)
        REFUND_DECLINE_FROM_PERCENT = tostring(var.refund_decline_from_percent)
        REFUND_RULES                = jsonencode(var.refund_rules)
        # A run is fanned out: one work message per tenant x source (reconcile_worker.tf).
        RECONCILE_WORK_TOPIC = google_pubsub_topic.reconcile_work.id
      }
      secret_env = {
        APPLE_API_PRIVATE_KEY = google_secret_manager_secret.apple_api_key.secret_id
      }
    }

    # One page of one tenant's source per work message, pushed by Pub/Sub (reconcile_worker.tf).
    reconcile_worker = {
      enabled     = true
      title       = "reconciliation worker function"
      description = "Does one page of one tenant's reconciliation source per work message (Play voided purchases, Apple notification history, refund requests), pushed by Pub/Sub (OIDC), and publishes the next page (reconcile_worker.tf)."
      # Pub/Sub push is internal traffic; only the push identity may invoke it (reconcile_worker.tf).
      ingress    = "ALLOW_INTERNAL_ONLY"
      lookup_env = local.order_lookup_env
      env = {
        APPLE_ENVIRONMENTS        = join(",", var.apple_environments)
        RECONCILE_OVERLAP_MINUTES = tostring(var.reconcile_overlap_minutes)
        # One page within half the timeout; the push subscription's ack deadline is above both.
        RECONCILE_BUDGET_SECONDS    = tostring(local.reconcile_worker_budget_seconds)
        REFUND_REQUESTS             = var.refund_requests
        REFUND_GRANT_BELOW_PERCENT  = tostring(var.refund_grant_below_percent)
        REFUND_DECLINE_FROM_PERCENT = tostring(var.refund_decline_from_percent)
        REFUND_RULES                = jsonencode(var.refund_rules)
        # Where it publishes each continuation.
        RECONCILE_WORK_TOPIC = google_pubsub_topic.reconcile_work.id
        # The function checks the push identity's OIDC token itself too (not only Cloud Run IAM).
        RECONCILE_PUSH_SERVICE_ACCOUNTS = google_service_account.reconcile_push.email
        RECONCILE_PUSH_AUDIENCE         = local.reconcile_worker_audience
        RECONCILE_PUSH_CERTS_URL        = var.id_token_certs_url
      }
      # Apple's notification history and Send Consumption Information (the default tenant's key).
      secret_env = {
        APPLE_API_PRIVATE_KEY = google_secret_manager_secret.apple_api_key.secret_id
      }
    }

    # The admin API again, with its web page, for browsers (docs/console.md). Public at the Cloud
    # Run layer (a browser cannot pass Cloud Run IAM; iam.tf), so the code checks everything: ID
    # tokens issued to var.console_oauth_client_id only (Google Identity Services on the page),
    # the same ADMIN_EMAILS, idempotency and audit line as the admin function.
    admin_console = {
      enabled     = var.console_oauth_client_id != ""
      title       = "admin console function"
      description = "Admin console: web page and admin API for browsers (Google sign-in). Public invoker; the code accepts only ID tokens for the console's OAuth client id whose email is on ADMIN_EMAILS."
      # Support staff open it in their browsers; see the CKV_GCP_124 skip below.
      ingress = "ALLOW_ALL"
      # Look-up by order id, as in the admin function.
      lookup_env = local.order_lookup_env
      env = {
        CONSOLE_OAUTH_CLIENT_ID = var.console_oauth_client_id
        CONSOLE_GIS_CLIENT_URL  = local.google_sign_in_library
        # People sign in to the console as themselves (their own Google accounts).
        ADMIN_EMAILS    = join(",", local.console_allow_list)
        ADMIN_CERTS_URL = var.id_token_certs_url
        # GET /insight reads the figures from BigQuery (insight.tf).
        INSIGHT_ENGINE        = local.insight_env.INSIGHT_ENGINE
        INSIGHT_DATASET       = local.insight_env.INSIGHT_DATASET
        INSIGHT_LOCATION      = local.insight_env.INSIGHT_LOCATION
        INSIGHT_API_BASE_URL  = local.insight_env.INSIGHT_API_BASE_URL
        INSIGHT_CACHE_SECONDS = local.insight_env.INSIGHT_CACHE_SECONDS
        # The default tenant's refund policy, for POST /refund-requests:dry-run.
        REFUND_REQUESTS             = var.refund_requests
        REFUND_GRANT_BELOW_PERCENT  = tostring(var.refund_grant_below_percent)
        REFUND_DECLINE_FROM_PERCENT = tostring(var.refund_decline_from_percent)
        REFUND_RULES                = jsonencode(var.refund_rules)
      }
      secret_env = {
        APPLE_API_PRIVATE_KEY = google_secret_manager_secret.apple_api_key.secret_id
      }
    }
  }

  # What is deployed: every function whose entry is enabled.
  enabled_functions      = { for name, function in local.functions : name => function if function.enabled }
  enabled_function_names = { for name, function_name in local.function_names : name => function_name if local.functions[name].enabled }

  # Google Identity Services' client library, which the console's page loads (its
  # Content-Security-Policy allows this URL and the /gsi/ paths beside it, nothing else of Google's).
  google_sign_in_library = "https://accounts.google.com/gsi/client"

  # Deterministic URLs of the admin function, computed without referring to the function itself
  # (a function cannot read its own URL into its own environment: that is a dependency cycle).
  #   cloudfunctions.net: the URL `gcloud functions describe` shows and admins use as token audience;
  #   run.app:            Cloud Run's deterministic URL https://SERVICE-PROJECT_NUMBER.REGION.run.app.
  admin_function_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.function_names.admin}"
  admin_run_app_url  = "https://${local.function_names.admin}-${data.google_project.this.number}.${var.region}.run.app"
  admin_audiences    = distinct(concat([local.admin_function_url, local.admin_run_app_url], var.admin_extra_audiences))
  play_push_audience = "https://${local.function_names.play_notifications}-${data.google_project.this.number}.${var.region}.run.app"
  # The reconciler's deterministic run.app URL: the admin function's RECONCILE_URL and the audience
  # of its ID token (a function cannot read another instance of the same resource: a cycle).
  reconcile_url = "https://${local.function_names.reconcile}-${data.google_project.this.number}.${var.region}.run.app"

  apple_production   = contains(var.apple_environments, "Production")
  play_developer_api = var.play_developer_api ? "on" : "off"
}

resource "google_cloudfunctions2_function" "function" {
  # checkov:skip=CKV_GCP_124: reason: checkov cannot tell the instances of this for_each apart, so the ingress rule is checked per function in tests/unit/test_infra.py instead: the Play function uses var.play_ingress_settings (default ALLOW_INTERNAL_ONLY); Apple's servers reach the Apple function over the internet (every payload must be a JWS ending in the pinned Apple Root CA - G3); admins call the admin function from their own machines, gated by Cloud Run IAM (var.admin_members) and then ADMIN_EMAILS; support staff open the optional console in their browsers, where the code checks the Google ID token (the console's OAuth client id as audience) and ADMIN_EMAILS.
  for_each = local.enabled_functions

  name        = local.function_names[each.key]
  project     = var.project_id
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = var.python_runtime
    entry_point     = each.key
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.key].email
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    max_instance_count               = var.function_max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1

    environment_variables = merge(local.common_env, each.value.lookup_env, each.value.env)

    # Secret Manager values as variables (never in state): only while the Apple API key is
    # configured, so that a first apply works before the secret has a version (secrets.tf).
    dynamic "secret_environment_variables" {
      for_each = var.apple_api_key_id == "" ? {} : each.value.secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.firestore_deadline_seconds < var.function_timeout_seconds
      error_message = "firestore_deadline_seconds must be below function_timeout_seconds so a slow Firestore ends in a clean 503."
    }
    precondition {
      condition     = each.key != "apple_notifications" || !local.apple_production || var.apple_app_apple_id != ""
      error_message = "apple_app_apple_id is required when apple_environments contains Production."
    }
    precondition {
      condition     = var.apple_api_key_id == "" || var.apple_api_issuer_id != ""
      error_message = "apple_api_issuer_id is required with apple_api_key_id (App Store Connect > Users and Access > Integrations)."
    }
    precondition {
      condition     = keys(local.function_names) == keys(local.functions)
      error_message = "local.function_names and local.functions must have the same keys (one name per function)."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.function_datastore_user,
    google_secret_manager_secret_iam_member.apple_api_key_accessor,
  ]
}

# The functions were three separate resources before; these keep them (no destroy and re-create).
moved {
  from = google_cloudfunctions2_function.play
  to   = google_cloudfunctions2_function.function["play_notifications"]
}

moved {
  from = google_cloudfunctions2_function.apple
  to   = google_cloudfunctions2_function.function["apple_notifications"]
}

moved {
  from = google_cloudfunctions2_function.admin
  to   = google_cloudfunctions2_function.function["admin"]
}

# After apply: warn (not fail) when the admin service answers on a URL that ADMIN_AUDIENCES lacks,
# e.g. a project whose Cloud Run URLs are the legacy hashed form. Add it to admin_extra_audiences.
check "admin_audiences_cover_service_uri" {
  assert {
    condition     = contains(local.admin_audiences, google_cloudfunctions2_function.function["admin"].service_config[0].uri)
    error_message = "ADMIN_AUDIENCES does not contain the admin service URI ${google_cloudfunctions2_function.function["admin"].service_config[0].uri}; tokens minted for that URL will be refused. Add it to admin_extra_audiences and apply again."
  }
}
