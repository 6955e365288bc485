-- Security and the operator surface (issue 6): disabled and deleted users,
-- revoked devices with their refresh token, and bans. NULL times mean "not
-- disabled", "not deleted", "not revoked". Nullable columns without
-- defaults are catalog-only changes: no table rewrite.

ALTER TABLE users
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN deleted_at  timestamptz;

-- refresh_hash is the SHA-256 (hex) of the device's one refresh token; ''
-- when it has none. Constant defaults are recorded in the catalog too.
ALTER TABLE devices
    ADD COLUMN revoked_at         timestamptz,
    ADD COLUMN refresh_hash       text        NOT NULL DEFAULT '',
    ADD COLUMN refresh_expires_at timestamptz NOT NULL DEFAULT 'epoch';

-- value is a user id (kind 'user') or a canonical CIDR prefix (kind 'ip').
CREATE TABLE bans (
    kind       text        NOT NULL CHECK (kind IN ('user', 'ip')),
    value      text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (kind, value)
);
