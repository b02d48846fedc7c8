-- facts: one row per counted thing (a purchase, a refund, a partial refund, a reversal, an admin
-- re-grant, a refund request received or settled), dated in UTC, with its tenant and product.
-- The figures view counts them per period. Every definition is in docs/insight.md.
-- One pass over events_unique: what a fact needs of its purchase's other events (the purchase's
-- first grant, its product, its last refund) comes from windows partitioned by tenant and
-- purchase, so a WHERE tenant = ... on the views reaches the table.
WITH events AS (
  SELECT
    tenant,
    type,
    time AS applied_at,
    IF(type = 'com.refundguard.refund_request.v1', data.entitlement_id, subject) AS entitlement_id,
    data.product_id AS product_id,
    data.status AS status,
    data.cause.source AS cause_source,
    data.cause.type AS cause_type,
    data.cause.event_time AS store_time,
    data.state AS state,
    data.previous_state AS previous_state,
    data.received_at AS received_at
  FROM `${project}.${dataset}.events_unique`
),

classified AS (
  SELECT
    *,
    -- A purchase: a grant a store announced (a reversal is no purchase); the first one counts.
    type = 'com.refundguard.entitlement.access.v1'
      AND status = 'active'
      AND cause_source IN ('google', 'apple')
      AND cause_type != 'REFUND_REVERSED'
      AND NOT STARTS_WITH(cause_type, 'REFUND_REVERSED.') AS is_grant,
    -- A refund: access revoked by a store's refund (Google voided purchase or subscription
    -- revoked, Apple REFUND), dated by the store.
    type = 'com.refundguard.entitlement.access.v1'
      AND status = 'revoked'
      AND cause_source IN ('google', 'apple')
      AND (
        cause_type IN ('VOIDED_PURCHASE', 'SUBSCRIPTION_REVOKED', 'REFUND')
        OR STARTS_WITH(cause_type, 'REFUND.')
      ) AS is_refund
  FROM events
),

purchases AS (
  SELECT
    *,
    MIN(IF(is_grant, store_time, NULL)) OVER purchase AS purchased_at,
    MAX(IF(is_refund, store_time, NULL)) OVER purchase AS last_refund_at,
    MAX(product_id) OVER purchase AS product
  FROM classified
  WINDOW purchase AS (PARTITION BY tenant, entitlement_id)
),

-- Each event against each kind of fact: the kinds it is (most events are one, none or two).
facts AS (
  SELECT
    tenant,
    product,
    kind,
    CASE kind
      WHEN 'purchase' THEN is_grant AND store_time = purchased_at
      WHEN 'refund' THEN is_refund
      WHEN 'refund_of_purchase' THEN is_refund AND purchased_at IS NOT NULL
      WHEN 'partial_refund' THEN type = 'com.refundguard.entitlement.access.v1'
        AND cause_type = 'VOIDED_PURCHASE_PARTIAL_REFUND'
      WHEN 'reversal' THEN type = 'com.refundguard.entitlement.access.v1'
        AND status = 'active'
        AND cause_source = 'apple'
        AND (cause_type = 'REFUND_REVERSED' OR STARTS_WITH(cause_type, 'REFUND_REVERSED.'))
      WHEN 'admin_regrant' THEN type = 'com.refundguard.entitlement.access.v1'
        AND cause_source = 'admin'
        AND cause_type = 'ADMIN_REGRANT'
      WHEN 'request_received' THEN type = 'com.refundguard.refund_request.v1'
        AND previous_state IS NULL
      WHEN 'request_settled' THEN type = 'com.refundguard.refund_request.v1'
        AND previous_state = 'pending'
        AND state IN ('answered', 'unanswerable', 'expired')
      WHEN 'request_refunded' THEN type = 'com.refundguard.refund_request.v1'
        AND previous_state IS NULL
        AND last_refund_at >= received_at
    END AS counted,
    CASE kind
      WHEN 'refund_of_purchase' THEN purchased_at
      WHEN 'admin_regrant' THEN applied_at
      WHEN 'request_received' THEN received_at
      WHEN 'request_settled' THEN applied_at
      WHEN 'request_refunded' THEN received_at
      ELSE store_time
    END AS at,
    IF(kind = 'refund', TIMESTAMP_DIFF(applied_at, store_time, MILLISECOND), NULL) AS ms,
    state
  FROM purchases
  CROSS JOIN (
    SELECT kind
    FROM UNNEST([
      'purchase', 'refund', 'refund_of_purchase', 'partial_refund', 'reversal', 'admin_regrant',
      'request_received', 'request_settled', 'request_refunded'
    ]) AS kind
  ) AS kinds
)

SELECT
  tenant,
  COALESCE(product, '(unknown)') AS product_id,
  IF(kind = 'request_settled', CONCAT('request_', state), kind) AS fact,
  at,
  ms
FROM facts
WHERE counted
