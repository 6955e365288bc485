-- Bytes each user uploaded per UTC day, for the daily upload quota. A
-- counter of its own, not a sum over media: deleting an upload does not
-- give its bytes back. Days before yesterday are pruned by the media
-- collector.
CREATE TABLE media_usage (
    user_id text   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     date   NOT NULL,
    bytes   bigint NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (user_id, day)
);
CREATE INDEX media_usage_day ON media_usage (day);
