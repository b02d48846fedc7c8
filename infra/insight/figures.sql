-- figures: per tenant, product ('*' = all the tenant's products) and period (granularity day,
-- week from Monday, or month; period_start a UTC date), the counts of docs/insight.md and the
-- time from the store's refund to revoked access (median and 95th percentile, milliseconds).
-- Read it with a WHERE on tenant (the per-tenant row filter), granularity and period_start.
WITH periods AS (
  SELECT
    f.tenant,
    IF(every_product, '*', f.product_id) AS product,
    granularity,
    CASE granularity
      WHEN 'day' THEN DATE(f.at)
      WHEN 'week' THEN DATE(DATE_TRUNC(DATE(f.at), WEEK(MONDAY)))
      ELSE DATE(DATE_TRUNC(DATE(f.at), MONTH))
    END AS period_start,
    f.fact,
    f.ms
  FROM `${project}.${dataset}.facts` AS f
  CROSS JOIN (SELECT granularity FROM UNNEST(['day', 'week', 'month']) AS granularity) AS g
  CROSS JOIN (SELECT every_product FROM UNNEST([FALSE, TRUE]) AS every_product) AS p
),

-- Exact percentiles (PERCENTILE_CONT, linear interpolation; NULLs, i.e. every fact but a
-- refund, ignored) beside each row, so that the facts are read once.
timed AS (
  SELECT
    *,
    PERCENTILE_CONT(IF(fact = 'refund', ms, NULL), 0.5)
      OVER (PARTITION BY tenant, product, granularity, period_start) AS p50,
    PERCENTILE_CONT(IF(fact = 'refund', ms, NULL), 0.95)
      OVER (PARTITION BY tenant, product, granularity, period_start) AS p95
  FROM periods
)

SELECT
  tenant,
  product AS product_id,
  granularity,
  period_start,
  COUNTIF(fact = 'purchase') AS purchases,
  COUNTIF(fact = 'refund') AS refunds,
  COUNTIF(fact = 'refund_of_purchase') AS refunds_of_purchases,
  SAFE_DIVIDE(COUNTIF(fact = 'refund_of_purchase'), COUNTIF(fact = 'purchase')) AS refund_rate,
  COUNTIF(fact = 'partial_refund') AS partial_refunds,
  COUNTIF(fact = 'reversal') AS reversals,
  COUNTIF(fact = 'admin_regrant') AS admin_regrants,
  COUNTIF(fact = 'request_received') AS requests_received,
  COUNTIF(fact = 'request_answered') AS requests_answered,
  COUNTIF(fact = 'request_expired') AS requests_expired,
  COUNTIF(fact = 'request_unanswerable') AS requests_unanswerable,
  COUNTIF(fact = 'request_refunded') AS requests_refunded,
  MAX(p50) AS revoke_p50_ms,
  MAX(p95) AS revoke_p95_ms
FROM timed
GROUP BY tenant, product, granularity, period_start
