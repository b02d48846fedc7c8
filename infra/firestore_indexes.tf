# Composite indexes of the tenant-scoped queries (equality on `tenant`, then an order). Firestore
# answers equality-only queries and single-field orders from its automatic single-field indexes;
# these are the ones it cannot. Each ends with `__name__`, as Firestore would add it.

# GET /tenants/{id}/entitlements (backfill): tenant == T [updated_ms >= t], ordered by updated_ms
# then document id (store.EntitlementStore.list_for_tenant).
resource "google_firestore_index" "entitlements_by_tenant" {
  project     = var.project_id
  database    = google_firestore_database.ledger.name
  collection  = "entitlements"
  query_scope = "COLLECTION"

  fields {
    field_path = "tenant"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updated_ms"
    order      = "ASCENDING"
  }
  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }
}

# The same with ?status=.
resource "google_firestore_index" "entitlements_by_tenant_status" {
  project     = var.project_id
  database    = google_firestore_database.ledger.name
  collection  = "entitlements"
  query_scope = "COLLECTION"

  fields {
    field_path = "tenant"
    order      = "ASCENDING"
  }
  fields {
    field_path = "status"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updated_ms"
    order      = "ASCENDING"
  }
  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }
}

# GET /refund-requests for tenant staff: tenant in [...], newest received first
# (refund_store.RefundStore.recent).
resource "google_firestore_index" "refund_requests_by_tenant" {
  project     = var.project_id
  database    = google_firestore_database.ledger.name
  collection  = "refund_requests"
  query_scope = "COLLECTION"

  fields {
    field_path = "tenant"
    order      = "ASCENDING"
  }
  fields {
    field_path = "received_ms"
    order      = "DESCENDING"
  }
  fields {
    field_path = "__name__"
    order      = "DESCENDING"
  }
}
