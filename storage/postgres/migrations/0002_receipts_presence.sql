-- msgr schema v2: receipts and presence. SCHEMA.md explains the choices.

-- Constant defaults: PostgreSQL records them in the catalog instead of
-- rewriting the tables.
ALTER TABLE members
    ADD COLUMN delivered_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN read_seq      bigint NOT NULL DEFAULT 0;

-- Every acknowledgement and read now updates a members row; free space on
-- each page keeps those updates HOT. Applies to pages written from now on.
ALTER TABLE members SET (fillfactor = 80);

-- Delivery is a fact the cursors already record. Nothing is known about
-- reads; what was delivered before the upgrade counts as read, rather than
-- every old message turning up unread (and nobody counting as engaged, on
-- which contacts depend).
UPDATE members m SET delivered_seq = d.seq, read_seq = d.seq
FROM (
    SELECT user_id, conv_id, max(seq) AS seq FROM device_cursors GROUP BY user_id, conv_id
) d
WHERE d.user_id = m.user_id AND d.conv_id = m.conv_id;

ALTER TABLE users
    ADD COLUMN presence      text    NOT NULL DEFAULT 'contacts',
    ADD COLUMN read_receipts boolean NOT NULL DEFAULT true,
    ADD COLUMN last_seen     timestamptz; -- NULL: never seen
-- Existing rows hold the default, which passes, so skip the validating scan
-- of users; new and updated rows are checked all the same.
ALTER TABLE users ADD CONSTRAINT users_presence_check
    CHECK (presence IN ('everyone', 'contacts', 'nobody')) NOT VALID;

-- Contacts looks a user up on both sides of a pair; the primary key serves
-- user_lo only.
CREATE INDEX direct_pairs_user_hi ON direct_pairs (user_hi);
