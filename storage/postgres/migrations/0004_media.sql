-- Media uploads (issue 5). The content is an encrypted object in the blob
-- store; wrapped_key is its data key wrapped by the master key, thumbnail an
-- encrypted JPEG. media_refs records every message that carried a media:
-- members who can see that message may fetch it, and media nobody
-- references are garbage-collected.
CREATE TABLE media (
    id           text        PRIMARY KEY,
    owner_id     text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type text        NOT NULL,
    name         text        NOT NULL,
    size         bigint      NOT NULL CHECK (size >= 0),
    wrapped_key  text        NOT NULL,
    thumbnail    bytea,
    width        int         NOT NULL DEFAULT 0,
    height       int         NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL
);

CREATE INDEX media_created_at ON media (created_at);

CREATE TABLE media_refs (
    media_id text   NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    conv_id  text   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq      bigint NOT NULL,
    PRIMARY KEY (media_id, conv_id, seq)
);
