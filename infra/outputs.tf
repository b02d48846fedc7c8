output "apple_notifications_url" {
  description = "Paste into App Store Connect > App Information > App Store Server Notifications, as the Production and Sandbox Server URL (Version 2)."
  value       = google_cloudfunctions2_function.function["apple_notifications"].url
}

output "admin_url" {
  description = "The admin API. Call it with an ID token whose audience is this URL: gcloud auth print-identity-token --audiences=<admin_url>."
  value       = google_cloudfunctions2_function.function["admin"].url
}

output "admin_service_accounts" {
  description = "Each admin's own service account: refundguard-admin --url <admin_url> --impersonate-service-account <this> (after gcloud auth application-default login as that admin)."
  value       = { for email in var.admins : email => google_service_account.admin[email].email }
}

output "console_url" {
  description = "The admin console (null without console_oauth_client_id). Add this origin to the OAuth client's Authorized JavaScript origins, then open it in a browser (docs/console.md)."
  value       = one([for name, function in google_cloudfunctions2_function.function : function.service_config[0].uri if name == "admin_console"])
}

output "admin_audiences" {
  description = "ADMIN_AUDIENCES given to the admin function."
  value       = local.admin_audiences
}

output "play_rtdn_topic" {
  description = "Paste into Play Console > Monetize with Play > Monetization setup > Real-time developer notifications > Topic name."
  value       = google_pubsub_topic.rtdn.id
}

output "play_push_subscription" {
  description = "The push subscription delivering RTDNs to the Play function."
  value       = google_pubsub_subscription.push["rtdn"].id
}

output "dead_letter_subscription" {
  description = "RTDN messages that failed every delivery attempt wait here for 7 days (watch it; replay with scripts/replay_dead_letters.sh)."
  value       = google_pubsub_subscription.dead_letter["rtdn"].id
}

output "dead_letter_topic" {
  description = "The dead-letter topic of the push subscription."
  value       = google_pubsub_topic.dead_letter["rtdn"].id
}

output "firestore_database" {
  description = "The Firestore database of the ledger (collections entitlements, quarantine)."
  value       = google_firestore_database.ledger.name
}

output "function_service_accounts" {
  description = "Runtime service account of each function (each has roles/datastore.user only)."
  value       = { for k, sa in google_service_account.function : k => sa.email }
}

output "function_source_object" {
  description = "The deployed source archive (named by its SHA-256)."
  value       = "gs://${google_storage_bucket.function_source.name}/${google_storage_bucket_object.function_source.name}"
}

output "apple_root_ca_g3_sha256" {
  description = "SHA-256 of the Apple root shipped with the Apple function (checked at plan time against the pinned fingerprint)."
  value       = data.external.apple_root_ca_g3_sha256.result.sha256
}

output "play_console_service_accounts" {
  description = "Invite these in the Play Console (Users and permissions > Invite new users) with 'View financial data' (the reconciler and its worker also with 'Manage orders and subscriptions', to answer refund reviews): the functions that call the Play Developer API."
  value       = [for name in ["play_notifications", "admin", "admin_console", "reconcile", "reconcile_worker"] : google_service_account.function[name].email if contains(keys(local.enabled_functions), name)]
}

output "apple_api_key_secret" {
  description = "The Secret Manager secret that holds the App Store Server API key: add the .p8 text with gcloud secrets versions add <this> --data-file=KEY.p8, then set apple_api_key_id and apple_api_issuer_id."
  value       = google_secret_manager_secret.apple_api_key.id
}

output "events_topic" {
  description = "The access-change events topic (EVENTS_TOPIC of every function)."
  value       = google_pubsub_topic.events.id
}

output "platform_push_subscription" {
  description = "The push subscription delivering events to platform_webhook_url (null without a webhook)."
  value       = local.platform_push ? google_pubsub_subscription.push["events"].id : null
}

output "platform_push_service_account" {
  description = "The email in the OIDC token of every push to the platform's webhook: the webhook accepts this email only (null without a webhook)."
  value       = local.platform_push ? google_service_account.events_push[0].email : null
}

output "platform_pull_subscription" {
  description = "The pull subscription for the platform (null unless platform_pull_subscription)."
  value       = var.platform_pull_subscription ? google_pubsub_subscription.platform_pull[0].id : null
}

output "events_dead_letter_subscription" {
  description = "Events the webhook refused every time wait here for 7 days (null without a webhook)."
  value       = local.platform_push ? google_pubsub_subscription.dead_letter["events"].id : null
}

output "events_sweep_job" {
  description = "The Cloud Scheduler job that runs the events sweep."
  value       = google_cloud_scheduler_job.function["events_sweep"].id
}

output "reconcile_job" {
  description = "The Cloud Scheduler job that runs the reconciler."
  value       = google_cloud_scheduler_job.function["reconcile"].id
}

output "reconcile_url" {
  description = "The reconciler's URL (the admin function's RECONCILE_URL)."
  value       = local.reconcile_url
}
