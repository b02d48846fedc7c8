# ---------------------------------------------------------------------------------------------------
# Project and placement
# ---------------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project id that receives everything (functions, Firestore, Pub/Sub)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the source bucket and the Pub/Sub resources' consumers."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, topics, service accounts). Lower case, short."
  type        = string
  default     = "refundguard"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name_prefix))
    error_message = "name_prefix must be 2-16 characters of a-z, 0-9 and '-', starting with a letter (service account ids are limited to 30 characters)."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = { app = "refundguard" }
}

# ---------------------------------------------------------------------------------------------------
# Firestore
# ---------------------------------------------------------------------------------------------------

variable "firestore_database" {
  description = "Name of the Firestore database this stack creates; \"(default)\" unless the project already has one."
  type        = string
  default     = "(default)"
}

variable "firestore_location" {
  description = "Firestore location (multi-region such as nam5 / eur3, or a region such as us-central1). Cannot be changed later."
  type        = string
  default     = "nam5"
}

variable "firestore_point_in_time_recovery" {
  description = "Keep 7 days of point-in-time recovery for the ledger (small extra storage cost)."
  type        = bool
  default     = true
}

variable "tenant_cache_seconds" {
  type        = number
  default     = 60
  description = "TENANT_CACHE_SECONDS: how long a function instance trusts what it read about tenants and their apps; a tenant registered or changed at run time reaches every instance within this time."
  validation {
    condition     = var.tenant_cache_seconds >= 0 && var.tenant_cache_seconds <= 600
    error_message = "tenant_cache_seconds must be between 0 and 600."
  }
}

variable "firestore_deadline_seconds" {
  description = "FIRESTORE_DEADLINE_SECONDS: time one event may spend on Firestore before the function answers 503. Must stay below function_timeout_seconds."
  type        = number
  default     = 20

  validation {
    condition     = var.firestore_deadline_seconds >= 0.5 && var.firestore_deadline_seconds <= 540
    error_message = "firestore_deadline_seconds must be between 0.5 and 540."
  }
}

# ---------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------

variable "python_runtime" {
  description = "Cloud Functions runtime of all three functions."
  type        = string
  default     = "python312"

  validation {
    condition     = contains(["python312", "python313"], var.python_runtime)
    error_message = "python_runtime must be python312 or python313."
  }
}

variable "function_timeout_seconds" {
  description = "Request timeout of each function. The Play push subscription's ack deadline follows it."
  type        = number
  default     = 60

  validation {
    condition     = var.function_timeout_seconds >= 10 && var.function_timeout_seconds <= 540
    error_message = "function_timeout_seconds must be between 10 and 540 (the Pub/Sub ack deadline is at most 600 s)."
  }
}

variable "function_memory" {
  description = "Memory of each function instance."
  type        = string
  default     = "256Mi"
}

variable "function_max_instances" {
  description = "Upper bound on instances per function (a cost and blast-radius cap)."
  type        = number
  default     = 10
}

variable "build_service_account" {
  description = "Optional: full resource name (projects/P/serviceAccounts/EMAIL) of the service account Cloud Build uses to build the functions. null = the project's default build account."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------------
# Google Play
# ---------------------------------------------------------------------------------------------------

variable "play_package_names" {
  description = "PLAY_PACKAGE_NAMES: Android package names whose notifications are accepted (others are quarantined)."
  type        = list(string)

  validation {
    condition     = length(var.play_package_names) > 0 && alltrue([for p in var.play_package_names : can(regex("^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)+$", p))])
    error_message = "play_package_names must list at least one Android package name such as com.example.app."
  }
}

variable "play_ingress_settings" {
  description = "Ingress of the Play function. ALLOW_INTERNAL_ONLY admits Pub/Sub push from this project (Cloud Run counts it as internal) and nothing from the internet; ALLOW_ALL still requires the push identity's OIDC token."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_ALL"], var.play_ingress_settings)
    error_message = "play_ingress_settings must be ALLOW_INTERNAL_ONLY or ALLOW_ALL."
  }
}

variable "pubsub_max_delivery_attempts" {
  description = "Deliveries of one RTDN message to the Play function before it goes to the dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.pubsub_max_delivery_attempts >= 5 && var.pubsub_max_delivery_attempts <= 100
    error_message = "pubsub_max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "pubsub_minimum_backoff" {
  description = "Shortest wait before Pub/Sub redelivers a failed push (exponential backoff)."
  type        = string
  default     = "10s"
}

variable "pubsub_maximum_backoff" {
  description = "Longest wait before Pub/Sub redelivers a failed push (exponential backoff, at most 600s)."
  type        = string
  default     = "600s"
}

variable "grant_pubsub_token_creator" {
  description = "Grant the Pub/Sub service agent roles/iam.serviceAccountTokenCreator on the push identity only. Needed by projects created before 2021-04-08; harmless (and scoped to that one account) elsewhere."
  type        = bool
  default     = true
}

variable "play_developer_api" {
  description = "PLAY_DEVELOPER_API: ask the Play Developer API (purchases verified, subscription voids judged, orders looked up). Invite the play_console_service_accounts output in the Play Console first (docs/deploy.md)."
  type        = bool
  default     = false
}

variable "play_api_base_url" {
  description = "PLAY_API_BASE_URL: the Play Developer API's base URL."
  type        = string
  default     = "https://androidpublisher.googleapis.com"

  validation {
    condition     = can(regex("^https://[^/]+/?$", var.play_api_base_url))
    error_message = "play_api_base_url must be an https:// scheme and host, e.g. https://androidpublisher.googleapis.com."
  }
}

# ---------------------------------------------------------------------------------------------------
# Apple
# ---------------------------------------------------------------------------------------------------

variable "apple_bundle_ids" {
  description = "APPLE_BUNDLE_IDS: bundle ids whose App Store Server Notifications are accepted."
  type        = list(string)

  validation {
    condition     = length(var.apple_bundle_ids) > 0
    error_message = "apple_bundle_ids must list at least one bundle id."
  }
}

variable "apple_environments" {
  description = "APPLE_ENVIRONMENTS: which Apple environments are accepted: [\"Production\"], [\"Sandbox\"] or both."
  type        = list(string)
  default     = ["Production"]

  validation {
    condition     = length(var.apple_environments) > 0 && alltrue([for e in var.apple_environments : contains(["Production", "Sandbox"], e)])
    error_message = "apple_environments may only contain \"Production\" and \"Sandbox\"."
  }
}

variable "apple_app_apple_id" {
  description = "APPLE_APP_APPLE_ID: the app's numeric Apple ID (App Store Connect > App Information > Apple ID). Required when Production is accepted."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.apple_app_apple_id))
    error_message = "apple_app_apple_id must be digits only (or empty for a Sandbox-only deployment)."
  }
}

variable "apple_root_ca_url" {
  description = "Where Apple Root CA - G3 is downloaded from at plan time. Its SHA-256 is checked against the pinned fingerprint whatever the URL."
  type        = string
  default     = "https://www.apple.com/certificateauthority/AppleRootCA-G3.cer"
}

variable "apple_api_key_id" {
  description = "APPLE_API_KEY_ID: the In-App Purchase key's id (App Store Connect > Users and Access > Integrations). Empty: the App Store Server API is off. Set it only after adding the key to the apple_api_key_secret output's secret."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9]{0,64}$", var.apple_api_key_id))
    error_message = "apple_api_key_id must be the key id from App Store Connect (letters and digits), or empty."
  }
}

variable "apple_api_issuer_id" {
  description = "APPLE_API_ISSUER_ID: the issuer id (a UUID) shown above the keys in App Store Connect > Users and Access > Integrations. Required with apple_api_key_id."
  type        = string
  default     = ""

  validation {
    condition     = var.apple_api_issuer_id == "" || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.apple_api_issuer_id))
    error_message = "apple_api_issuer_id must be a UUID, or empty."
  }
}

variable "apple_api_base_url" {
  description = "APPLE_API_BASE_URL: the App Store Server API's Production host."
  type        = string
  default     = "https://api.storekit.apple.com"
}

variable "apple_api_sandbox_base_url" {
  description = "APPLE_API_SANDBOX_BASE_URL: the App Store Server API's Sandbox host."
  type        = string
  default     = "https://api.storekit-sandbox.apple.com"
}

# ---------------------------------------------------------------------------------------------------
# Admin
# ---------------------------------------------------------------------------------------------------

variable "admins" {
  description = "The people who act on refunds, by Google account email. Each gets a personal admin service account that only they can impersonate (the admin CLI's recommended path: docs/admin.md); the service account may invoke the admin function and is on ADMIN_EMAILS, so the history names it."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.admins : can(regex("^[^@\\s,*]+@[^@\\s,]+\\.[^@\\s,]+$", e))])
    error_message = "admins entries must be email addresses of Google accounts, e.g. alice@example.com."
  }
}

variable "admin_members" {
  description = "More IAM principals allowed to invoke the admin function (Cloud Run invoker) beside the admins' service accounts, e.g. an automation service account: serviceAccount:ops@PROJECT.iam.gserviceaccount.com."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.admin_members : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+", m))])
    error_message = "admin_members entries must be IAM principals such as user:alice@example.com or group:support@example.com (allUsers / allAuthenticatedUsers are not allowed)."
  }
}

variable "admin_emails" {
  description = "More entries of ADMIN_EMAILS beside the admins' service accounts (added automatically): emails or *@domain the admin function accepts in the caller's verified ID token, e.g. an automation service account. The second gate after IAM."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.admin_emails : can(regex("^(\\*|[^@\\s,]+)@[^@\\s,]+\\.[^@\\s,]+$", e))])
    error_message = "admin_emails entries must look like alice@example.com or *@example.com."
  }
}

variable "admin_extra_audiences" {
  description = "Extra ADMIN_AUDIENCES entries beside the two computed admin URLs, e.g. the admin service's legacy https://NAME-HASH-REGION.a.run.app URL (see the admin_audiences_check warning)."
  type        = list(string)
  default     = []
}

variable "console_oauth_client_id" {
  description = "Optional: the OAuth client id (type Web application) of the admin console, created by hand (docs/console.md). Set: the admin_console function is deployed (public invoker; the code accepts only Google ID tokens for this client id, from ADMIN_EMAILS). Empty: no console."
  type        = string
  default     = ""

  validation {
    condition     = var.console_oauth_client_id == "" || can(regex("^[A-Za-z0-9][A-Za-z0-9-]*\\.apps\\.googleusercontent\\.com$", var.console_oauth_client_id))
    error_message = "console_oauth_client_id must be an OAuth client id such as 1234567890-abc123.apps.googleusercontent.com, or empty."
  }
}

variable "id_token_certs_url" {
  description = "ADMIN_CERTS_URL and PLAY_PUSH_CERTS_URL: Google's public keys for verifying ID tokens (admins' and the Pub/Sub push identity's)."
  type        = string
  default     = "https://www.googleapis.com/oauth2/v3/certs"
}

# ---------------------------------------------------------------------------------------------------
# Access-change events for the platform (events.tf, docs/integrating.md)
# ---------------------------------------------------------------------------------------------------

variable "platform_webhook_url" {
  description = "Optional: the platform's HTTPS webhook. Set, a push subscription delivers every access-change event there, signed with an OIDC token of a dedicated service account (audience = this URL), retried with backoff, dead-lettered after platform_push_max_delivery_attempts. Empty: no push."
  type        = string
  default     = ""

  validation {
    condition     = var.platform_webhook_url == "" || can(regex("^https://[^\\s/]+(/\\S*)?$", var.platform_webhook_url))
    error_message = "platform_webhook_url must be empty or an https:// URL."
  }
}

variable "platform_pull_subscription" {
  description = "Create a pull subscription on the access-events topic for the platform (pulled by platform_subscriber_members)."
  type        = bool
  default     = false
}

variable "platform_subscriber_members" {
  description = "IAM principals granted roles/pubsub.subscriber on the platform pull subscription, e.g. serviceAccount:consumer@platform-project.iam.gserviceaccount.com. Needs platform_pull_subscription = true."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.platform_subscriber_members : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+", m))])
    error_message = "platform_subscriber_members entries must be IAM principals such as serviceAccount:consumer@project.iam.gserviceaccount.com (allUsers / allAuthenticatedUsers are not allowed)."
  }
}

variable "platform_push_max_delivery_attempts" {
  description = "Deliveries of one event to the platform's webhook before it goes to the events dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.platform_push_max_delivery_attempts >= 5 && var.platform_push_max_delivery_attempts <= 100
    error_message = "platform_push_max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "platform_push_minimum_backoff" {
  description = "Shortest wait before Pub/Sub pushes a refused event to the platform again (exponential backoff)."
  type        = string
  default     = "10s"
}

variable "platform_push_maximum_backoff" {
  description = "Longest wait before Pub/Sub pushes a refused event to the platform again (at most 600s)."
  type        = string
  default     = "600s"
}

variable "events_message_retention" {
  description = "How long the access-events topic keeps published events (10m to 31 days), so that a subscription can be seeked back in time to replay them."
  type        = string
  default     = "604800s"
}

variable "events_sweep_schedule" {
  description = "Cloud Scheduler cron (UTC) of the events sweep, which publishes what the outbox still holds."
  type        = string
  default     = "*/5 * * * *"
}

variable "events_sweep_ingress_settings" {
  description = "Ingress of the events sweep function. ALLOW_INTERNAL_ONLY admits Cloud Scheduler in the same project (Cloud Run counts it as internal) and nothing from the internet; if the job's runs fail without reaching the function, set ALLOW_ALL (only the scheduler's identity may invoke it either way)."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_ALL"], var.events_sweep_ingress_settings)
    error_message = "events_sweep_ingress_settings must be ALLOW_INTERNAL_ONLY or ALLOW_ALL."
  }
}

variable "events_sweep_grace_seconds" {
  description = "EVENTS_SWEEP_GRACE_SECONDS: the sweep publishes outbox entries older than this; younger ones are left to the request that committed them."
  type        = number
  default     = 60

  validation {
    condition     = var.events_sweep_grace_seconds >= 1 && var.events_sweep_grace_seconds <= 3600
    error_message = "events_sweep_grace_seconds must be between 1 and 3600."
  }
}

# ---------------------------------------------------------------------------------------------------
# The reconciler and refund requests (reconcile.tf, docs/reconcile.md, docs/refunds.md)
# ---------------------------------------------------------------------------------------------------

variable "reconcile_schedule" {
  description = "Cloud Scheduler cron (UTC) of the reconciler, which catches refunds notifications missed and answers pending refund requests."
  type        = string
  default     = "*/30 * * * *"
}

variable "reconcile_ingress_settings" {
  description = "Ingress of the reconciler. ALLOW_ALL (default) lets the admin function's POST /reconciliation:run reach it (a call between functions is not internal traffic without VPC egress); only the scheduler's identity and the admin function's account may invoke it either way. ALLOW_INTERNAL_ONLY keeps it to Cloud Scheduler (manual runs then answer 503)."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_ALL"], var.reconcile_ingress_settings)
    error_message = "reconcile_ingress_settings must be ALLOW_INTERNAL_ONLY or ALLOW_ALL."
  }
}

variable "reconcile_work_max_delivery_attempts" {
  description = "Deliveries of one reconciliation work message to the worker before it goes to its dead-letter topic (5-100). Each delivery retries its page's store calls itself; the next scheduled run resumes from the cursor anyway."
  type        = number
  default     = 5

  validation {
    condition     = var.reconcile_work_max_delivery_attempts >= 5 && var.reconcile_work_max_delivery_attempts <= 100
    error_message = "reconcile_work_max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "reconcile_overlap_minutes" {
  description = "RECONCILE_OVERLAP_MINUTES: each run asks the stores again for this much before where the previous run finished (what is known costs one read per page)."
  type        = number
  default     = 360

  validation {
    condition     = var.reconcile_overlap_minutes >= 0 && var.reconcile_overlap_minutes <= 10080
    error_message = "reconcile_overlap_minutes must be between 0 and 10080 (7 days)."
  }
}

variable "refund_requests" {
  description = "REFUND_REQUESTS: answer (send the consumption the platform reported, by the thresholds below) or off (record the stores' refund requests, answer none). docs/refunds.md."
  type        = string
  default     = "off"

  validation {
    condition     = contains(["off", "answer"], var.refund_requests)
    error_message = "refund_requests must be off or answer."
  }
}

variable "refund_grant_below_percent" {
  description = "REFUND_GRANT_BELOW_PERCENT: below this share consumed, the answer prefers a refund (Apple GRANT_FULL, Google APPROVE)."
  type        = number
  default     = 10

  validation {
    condition     = var.refund_grant_below_percent >= 0 && var.refund_grant_below_percent <= 100
    error_message = "refund_grant_below_percent must be between 0 and 100."
  }
}

variable "refund_decline_from_percent" {
  description = "REFUND_DECLINE_FROM_PERCENT: from this share consumed on, the answer prefers a decline (in between: Apple GRANT_PRORATED, Google NEUTRAL)."
  type        = number
  default     = 50

  validation {
    condition     = var.refund_decline_from_percent >= 0 && var.refund_decline_from_percent <= 100
    error_message = "refund_decline_from_percent must be between 0 and 100."
  }
}

variable "refund_rules" {
  description = "REFUND_RULES: the default tenant's ordered refund-request rules (docs/refunds.md): each {name, answer = refund|decline|prorated|neutral|skip, and optional stores, products, storefronts, min_age_days, below_age_days, min_consumed_percent, below_consumed_percent}; the first that matches decides, none matching: the two thresholds. Registered tenants set theirs through the admin API."
  type        = list(any)
  default     = []
}

# ---------------------------------------------------------------------------------------------------
# Refund insight (insight.tf, docs/insight.md)
# ---------------------------------------------------------------------------------------------------

variable "insight" {
  description = "Refund insight: the BigQuery dataset, table, views and the events topic's BigQuery subscription; GET /insight reads them. false: none of it (INSIGHT_ENGINE=off)."
  type        = bool
  default     = true
}

variable "insight_retention_days" {
  description = "Days the insight table keeps each day's events (its partitions expire); 0: kept until deleted."
  type        = number
  default     = 1095

  validation {
    condition     = var.insight_retention_days >= 0 && floor(var.insight_retention_days) == var.insight_retention_days
    error_message = "insight_retention_days must be a whole number of days, 0 or more."
  }
}

variable "insight_cache_seconds" {
  description = "INSIGHT_CACHE_SECONDS: how long the admin function and the console keep an answer of GET /insight in memory (0-3600)."
  type        = number
  default     = 60

  validation {
    condition     = var.insight_cache_seconds >= 0 && var.insight_cache_seconds <= 3600
    error_message = "insight_cache_seconds must be between 0 and 3600."
  }
}

# ---------------------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------------------

variable "alert_notification_channels" {
  description = "Monitoring notification channel ids (projects/P/notificationChannels/N) for the alert policies. Empty: the incidents only show in the console."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------------
# Refund alerts (alerts.tf, docs/alerts.md): checked by the events sweep, sent as events on the
# access-events topic, and to operators through the alert policies below
# ---------------------------------------------------------------------------------------------------

variable "refund_alerts" {
  description = "ALERTS: whether the events sweep runs the alert checks (refund-request deadlines, refund spikes, reconciliation, store access) and sends their events."
  type        = bool
  default     = true
}

variable "alert_deadline_hours" {
  description = "ALERT_DEADLINE_HOURS: a refund request without an answer alerts when less than this is left before its deadline (0.25 to 23)."
  type        = number
  default     = 4

  validation {
    condition     = var.alert_deadline_hours >= 0.25 && var.alert_deadline_hours <= 23
    error_message = "alert_deadline_hours must be between 0.25 and 23."
  }
}

variable "alert_spike_min_refunds" {
  description = "ALERT_SPIKE_MIN_REFUNDS: the refund-spike baseline's floor; a tenant's (or product's) refunds of the day alert only above it (docs/alerts.md)."
  type        = number
  default     = 10

  validation {
    condition     = var.alert_spike_min_refunds >= 1 && var.alert_spike_min_refunds <= 1000000
    error_message = "alert_spike_min_refunds must be between 1 and 1000000."
  }
}

variable "alert_reconcile_minutes" {
  description = "ALERT_RECONCILE_MINUTES: the reconciler alerts when it has not run, or not succeeded, for this long (15 to 10080); keep it above the reconcile_schedule's interval."
  type        = number
  default     = 60

  validation {
    condition     = var.alert_reconcile_minutes >= 15 && var.alert_reconcile_minutes <= 10080
    error_message = "alert_reconcile_minutes must be between 15 and 10080."
  }
}

variable "alert_emails" {
  description = "Email addresses notified by the refund alert policies (one email notification channel each)."
  type        = list(string)
  default     = []
}

variable "alert_slack_channel" {
  description = "Id (projects/P/notificationChannels/N) of an existing Slack notification channel for the refund alert policies. Create it once in Cloud Monitoring (Alerting > Edit notification channels > Slack), so the Slack token never enters Terraform state. Empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_slack_channel == "" || can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", var.alert_slack_channel))
    error_message = "alert_slack_channel must be empty or projects/PROJECT/notificationChannels/ID."
  }
}

variable "alert_slack_channel_name" {
  description = "Display name of an existing Slack notification channel of the project, looked up instead of alert_slack_channel. Empty: none."
  type        = string
  default     = ""
}
