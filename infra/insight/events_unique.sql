-- events_unique: one row per event id. The BigQuery subscription delivers at least once and the
-- events sweep may publish an event again (docs/integrating.md): duplicates share their id, and
-- the first one Pub/Sub published is kept. Partitioned by tenant too (an event has one tenant), so a
-- WHERE tenant = ... on the views reaches the table: BigQuery reads that tenant's clustered blocks.
SELECT
  *
FROM `${project}.${dataset}.events`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY tenant, id ORDER BY publish_time, message_id) = 1
