-- Bytes each user uploaded per UTC day, for the daily upload quota. A
-- counter of its own, not a sum over media: deleting an upload does not
-- give its bytes back. Days before yesterday are pruned by the media
-- collector. day is YYYY-MM-DD.
CREATE TABLE media_usage (
    user_id TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     TEXT    NOT NULL,
    bytes   INTEGER NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (user_id, day)
);
CREATE INDEX media_usage_day ON media_usage (day);
