-- events_unique: one row per event id. The BigQuery subscription delivers at least once and the
-- events sweep may publish an event again (docs/integrating.md): duplicates share their id, and
-- the first one Pub/Sub published is kept. Definitions: docs/insight.md.
SELECT
  *
FROM `${project}.${dataset}.events`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY publish_time, message_id) = 1
