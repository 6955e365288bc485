-- Encryption at rest. docs/ARCHITECTURE.md ("Encryption at rest") explains
-- the design.

-- Data keys, one current per conversation, stored wrapped under the master
-- key named by master_key_id ("v1.<master key id>.<base64>", see package
-- keyring). Deleting a conversation's rows crypto-shreds its messages.
-- AUTOINCREMENT: a key id is never reused after a key is shredded.
CREATE TABLE conversation_keys (
    key_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    conv_id       TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    wrapped       TEXT    NOT NULL,
    master_key_id TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX conversation_keys_conv_id ON conversation_keys (conv_id);
CREATE INDEX conversation_keys_master_key_id ON conversation_keys (master_key_id);

-- The key new messages are sealed with; NULL until the first message (or
-- after shredding).
ALTER TABLE conversations ADD COLUMN key_id INTEGER;

-- The data key a body is sealed with; NULL means a plaintext body written
-- before encryption, which the store encrypts in place on its first start
-- with a master key.
ALTER TABLE messages ADD COLUMN key_id INTEGER;
CREATE INDEX messages_plaintext ON messages (conv_id, seq) WHERE key_id IS NULL;

-- One row once the database has been opened with a master key: from then
-- on a store without one refuses to open it instead of mixing plaintext in.
CREATE TABLE encryption_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    enabled_at INTEGER NOT NULL
);
