# The ledger: collections `entitlements` (with a `history` subcollection per entitlement) and
# `quarantine`. Native mode; deleting the database needs a deliberate change here first.
resource "google_firestore_database" "ledger" {
  project     = var.project_id
  name        = var.firestore_database
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"
  point_in_time_recovery_enablement = var.firestore_point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"

  depends_on = [google_project_service.apis]
}

# The refund-request alert check's query (alert_checks.py): requests without an answer (state in
# pending, unanswerable, expired) whose deadline is in a window, by deadline.
resource "google_firestore_index" "refund_requests_by_state_deadline" {
  project    = var.project_id
  database   = google_firestore_database.ledger.name
  collection = "refund_requests"

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }

  fields {
    field_path = "deadline_ms"
    order      = "ASCENDING"
  }
}
