-- msgr schema v1. SCHEMA.md explains every key and index.

CREATE TABLE users (
    id            text        PRIMARY KEY,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE devices (
    user_id    text        NOT NULL REFERENCES users (id),
    device_id  text        NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- last_seq and last_at change with every message; fillfactor leaves room on
-- each page so those updates stay HOT (no index maintenance).
CREATE TABLE conversations (
    id         text        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('direct', 'group')),
    title      text        NOT NULL DEFAULT '',
    created_by text        NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    last_seq   bigint      NOT NULL DEFAULT 0,
    last_at    timestamptz NOT NULL
) WITH (fillfactor = 80);

CREATE TABLE direct_pairs (
    user_lo text NOT NULL REFERENCES users (id),
    user_hi text NOT NULL REFERENCES users (id),
    conv_id text NOT NULL UNIQUE REFERENCES conversations (id),
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);

CREATE TABLE members (
    conv_id   text        NOT NULL REFERENCES conversations (id),
    user_id   text        NOT NULL REFERENCES users (id),
    role      text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    from_seq  bigint      NOT NULL,
    until_seq bigint,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (conv_id, user_id)
);

CREATE INDEX members_user_id ON members (user_id);

-- Hash partitioning by conversation keeps every key of a message (and every
-- query, which always names one conversation) inside one partition.
CREATE TABLE messages (
    conv_id       text        NOT NULL,
    seq           bigint      NOT NULL,
    id            text        NOT NULL,
    sender_id     text        NOT NULL,
    sender_device text        NOT NULL,
    client_msg_id text        NOT NULL,
    kind          text        NOT NULL,
    body          bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (conv_id, seq),
    UNIQUE (conv_id, sender_id, client_msg_id)
) PARTITION BY HASH (conv_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE messages_p%s PARTITION OF messages FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;

CREATE TABLE device_cursors (
    user_id   text   NOT NULL,
    device_id text   NOT NULL,
    conv_id   text   NOT NULL,
    seq       bigint NOT NULL,
    PRIMARY KEY (user_id, device_id, conv_id)
);
