-- Initial schema. Times are INTEGER unix milliseconds. Names match the
-- PostgreSQL store so that both can be reasoned about together.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE devices (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- last_seq is the conversation's sequence allocator; last_at is the time of
-- the newest activity and orders a user's conversation list.
CREATE TABLE conversations (
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('direct', 'group')),
    title      TEXT    NOT NULL DEFAULT '',
    created_by TEXT    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    last_at    INTEGER NOT NULL
);

-- One direct conversation per unordered pair: user_lo < user_hi.
CREATE TABLE direct_pairs (
    user_lo TEXT NOT NULL REFERENCES users (id),
    user_hi TEXT NOT NULL REFERENCES users (id),
    conv_id TEXT NOT NULL UNIQUE REFERENCES conversations (id) ON DELETE CASCADE,
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);

-- until_seq is 0 while the membership is active.
CREATE TABLE members (
    conv_id   TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES users (id),
    role      TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    from_seq  INTEGER NOT NULL,
    until_seq INTEGER NOT NULL DEFAULT 0,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (conv_id, user_id)
);

CREATE INDEX members_user_id ON members (user_id);

CREATE TABLE messages (
    conv_id       TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    id            TEXT    NOT NULL UNIQUE,
    sender_id     TEXT    NOT NULL,
    sender_device TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (conv_id, seq),
    UNIQUE (conv_id, sender_id, client_msg_id)
);

CREATE TABLE device_cursors (
    user_id   TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    conv_id   TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, conv_id)
) WITHOUT ROWID;
