-- facts: one row per counted thing (a purchase, a refund, a partial refund, a reversal, an admin
-- re-grant, a refund request received or settled), dated in UTC, with its tenant and product.
-- The figures view counts them per period. Every definition is in docs/insight.md.
WITH access AS (
  SELECT
    tenant,
    subject AS entitlement_id,
    time AS applied_at,
    data.product_id AS product_id,
    data.status AS status,
    data.cause.source AS cause_source,
    data.cause.type AS cause_type,
    data.cause.event_time AS store_time
  FROM `${project}.${dataset}.events_unique`
  WHERE type = 'com.refundguard.entitlement.access.v1'
),

-- The product of each entitlement (any access event names it).
products AS (
  SELECT tenant, entitlement_id, MAX(product_id) AS product_id
  FROM access
  GROUP BY tenant, entitlement_id
),

-- A purchase: the first grant a store announced (a reversal is no purchase), at the store's time.
purchases AS (
  SELECT tenant, entitlement_id, MIN(store_time) AS purchased_at
  FROM access
  WHERE status = 'active'
    AND cause_source IN ('google', 'apple')
    AND cause_type != 'REFUND_REVERSED'
    AND NOT STARTS_WITH(cause_type, 'REFUND_REVERSED.')
  GROUP BY tenant, entitlement_id
),

-- A refund: access revoked by a store's refund (Google voided purchase or subscription revoked,
-- Apple REFUND), dated by the store; applied_at - refunded_at is the time to revoke access.
refunds AS (
  SELECT tenant, entitlement_id, store_time AS refunded_at, applied_at
  FROM access
  WHERE status = 'revoked'
    AND cause_source IN ('google', 'apple')
    AND (
      cause_type IN ('VOIDED_PURCHASE', 'SUBSCRIPTION_REVOKED', 'REFUND')
      OR STARTS_WITH(cause_type, 'REFUND.')
    )
),

requests AS (
  SELECT
    tenant,
    data.entitlement_id AS entitlement_id,
    data.state AS state,
    data.previous_state AS previous_state,
    data.received_at AS received_at,
    time AS changed_at
  FROM `${project}.${dataset}.events_unique`
  WHERE type = 'com.refundguard.refund_request.v1'
),

facts AS (
  SELECT tenant, entitlement_id, 'purchase' AS fact, purchased_at AS at, CAST(NULL AS INT64) AS ms
  FROM purchases
  UNION ALL
  SELECT tenant, entitlement_id, 'refund', refunded_at, TIMESTAMP_DIFF(applied_at, refunded_at, MILLISECOND)
  FROM refunds
  UNION ALL
  SELECT r.tenant, r.entitlement_id, 'refund_of_purchase', p.purchased_at, CAST(NULL AS INT64)
  FROM refunds AS r
  JOIN purchases AS p ON p.tenant = r.tenant AND p.entitlement_id = r.entitlement_id
  UNION ALL
  SELECT tenant, entitlement_id, 'partial_refund', store_time, CAST(NULL AS INT64)
  FROM access
  WHERE cause_type = 'VOIDED_PURCHASE_PARTIAL_REFUND'
  UNION ALL
  SELECT tenant, entitlement_id, 'reversal', store_time, CAST(NULL AS INT64)
  FROM access
  WHERE status = 'active'
    AND cause_source = 'apple'
    AND (cause_type = 'REFUND_REVERSED' OR STARTS_WITH(cause_type, 'REFUND_REVERSED.'))
  UNION ALL
  SELECT tenant, entitlement_id, 'admin_regrant', applied_at, CAST(NULL AS INT64)
  FROM access
  WHERE cause_source = 'admin' AND cause_type = 'ADMIN_REGRANT'
  UNION ALL
  SELECT tenant, entitlement_id, 'request_received', received_at, CAST(NULL AS INT64)
  FROM requests
  WHERE previous_state IS NULL
  UNION ALL
  SELECT tenant, entitlement_id, CONCAT('request_', state), changed_at, CAST(NULL AS INT64)
  FROM requests
  WHERE previous_state = 'pending' AND state IN ('answered', 'unanswerable', 'expired')
  UNION ALL
  SELECT q.tenant, q.entitlement_id, 'request_refunded', q.received_at, CAST(NULL AS INT64)
  FROM requests AS q
  WHERE q.previous_state IS NULL
    AND EXISTS (
      SELECT 1
      FROM refunds AS r
      WHERE r.tenant = q.tenant
        AND r.entitlement_id = q.entitlement_id
        AND r.refunded_at >= q.received_at
    )
)

SELECT f.tenant, COALESCE(p.product_id, '(unknown)') AS product_id, f.fact, f.at, f.ms
FROM facts AS f
LEFT JOIN products AS p ON p.tenant = f.tenant AND p.entitlement_id = f.entitlement_id
