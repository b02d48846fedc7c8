# Tenants' App Store Server API keys (functions/refundguard/tenant_keys.py): each creator's .p8 is
# encrypted with one Cloud KMS key, bound to the tenant id and key id (additional authenticated
# data), and the ciphertext is stored on the tenant's Firestore document. Nothing here is per
# tenant: onboarding a creator creates no resource and changes no IAM.
#
# Who may do what with the key (IAM on this key only, nothing project-wide):
#   - encrypt (roles/cloudkms.cryptoKeyEncrypter): the admin function and the console, which store
#     an uploaded key (PUT /tenants/{id}/apple-key);
#   - decrypt (roles/cloudkms.cryptoKeyDecrypter): the functions that call Apple with a tenant's
#     key: the admin function and the console (look-up by order id, check access, Apple's test
#     notification) and the reconciler. No function that receives notifications can read a key.
# No key material is ever in Terraform state: the key versions are generated inside KMS, and
# tenants' keys are uploaded through the admin API.

variable "tenant_keys_kms_base_url" {
  description = "TENANT_KEYS_KMS_BASE_URL: Cloud KMS's REST endpoint (http://127.0.0.1 only for a local stand-in)."
  type        = string
  default     = "https://cloudkms.googleapis.com"
}

locals {
  # Deployed entry points allowed to encrypt, and to decrypt, with the key.
  tenant_keys_encrypters = toset([for name in ["admin", "admin_console"] : name if contains(keys(local.enabled_functions), name)])
  tenant_keys_decrypters = toset([for name in ["admin", "admin_console", "reconcile", "reconcile_worker"] : name if contains(keys(local.enabled_functions), name)])
}

resource "google_kms_key_ring" "tenant_keys" {
  project  = var.project_id
  name     = "${var.name_prefix}-tenant-keys"
  location = var.region

  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "tenant_keys" {
  name     = "apple-api-keys"
  key_ring = google_kms_key_ring.tenant_keys.id
  purpose  = "ENCRYPT_DECRYPT"
  # A new primary version every 90 days (older versions keep decrypting what they encrypted).
  rotation_period = "7776000s"

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }

  # Destroying the key would make every stored tenant key unreadable: creators would have to upload
  # theirs again. KMS never deletes a crypto key; Terraform would destroy its versions.
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "tenant_keys_encrypter" {
  for_each = local.tenant_keys_encrypters

  crypto_key_id = google_kms_crypto_key.tenant_keys.id
  role          = "roles/cloudkms.cryptoKeyEncrypter"
  member        = google_service_account.function[each.key].member
}

resource "google_kms_crypto_key_iam_member" "tenant_keys_decrypter" {
  for_each = local.tenant_keys_decrypters

  crypto_key_id = google_kms_crypto_key.tenant_keys.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.function[each.key].member
}

output "tenant_keys_kms_key" {
  description = "The Cloud KMS key that seals tenants' App Store Server API keys (TENANT_KEYS_KMS_KEY)."
  value       = google_kms_crypto_key.tenant_keys.id
}
