-- Media uploads (issue 5). The content is an encrypted object in the blob
-- store; wrapped_key is its data key wrapped by the master key, thumbnail an
-- encrypted JPEG. media_refs records every message that carried a media:
-- members who can see that message may fetch it, and media nobody
-- references are garbage-collected.
CREATE TABLE media (
    id           TEXT    PRIMARY KEY,
    owner_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    wrapped_key  TEXT    NOT NULL,
    thumbnail    BLOB,
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

CREATE INDEX media_created_at ON media (created_at);

CREATE TABLE media_refs (
    media_id TEXT    NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    conv_id  TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (media_id, conv_id, seq)
);
