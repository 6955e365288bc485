-- Receipts and presence. Existing rows take the defaults: every user gets
-- the default settings and has never been seen.

-- delivered_seq follows the highest cursor of the user's devices and
-- read_seq the highest seq the user reported read; read_seq <= delivered_seq.
ALTER TABLE members ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN read_seq      INTEGER NOT NULL DEFAULT 0;

-- Delivery is a fact the cursors already record. Nothing is known about
-- reads; what was delivered before the upgrade counts as read, rather than
-- every old message turning up unread (and nobody counting as engaged, on
-- which contacts depend).
UPDATE members SET delivered_seq = (
    SELECT MAX(d.seq) FROM device_cursors d
    WHERE d.user_id = members.user_id AND d.conv_id = members.conv_id
)
WHERE EXISTS (
    SELECT 1 FROM device_cursors d
    WHERE d.user_id = members.user_id AND d.conv_id = members.conv_id
);
UPDATE members SET read_seq = delivered_seq;

ALTER TABLE users ADD COLUMN presence TEXT NOT NULL DEFAULT 'contacts'
    CHECK (presence IN ('everyone', 'contacts', 'nobody'));
ALTER TABLE users ADD COLUMN read_receipts INTEGER NOT NULL DEFAULT 1
    CHECK (read_receipts IN (0, 1));
-- NULL until the user's last device first disconnects.
ALTER TABLE users ADD COLUMN last_seen INTEGER;

-- Contacts looks a user up on both sides of a pair; the primary key serves
-- user_lo only.
CREATE INDEX direct_pairs_user_hi ON direct_pairs (user_hi);
