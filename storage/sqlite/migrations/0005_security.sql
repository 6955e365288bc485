-- Security and the operator surface (issue 6): disabled and deleted users,
-- revoked devices with their refresh token, and bans. Times are unix
-- milliseconds; NULL means "not disabled", "not deleted", "not revoked".

ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE users ADD COLUMN deleted_at  INTEGER;

ALTER TABLE devices ADD COLUMN revoked_at INTEGER;
-- SHA-256 (hex) of the device's one refresh token; '' when it has none.
ALTER TABLE devices ADD COLUMN refresh_hash       TEXT    NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN refresh_expires_at INTEGER NOT NULL DEFAULT 0;

-- value is a user id (kind 'user') or a canonical CIDR prefix (kind 'ip').
CREATE TABLE bans (
    kind       TEXT    NOT NULL CHECK (kind IN ('user', 'ip')),
    value      TEXT    NOT NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (kind, value)
);
