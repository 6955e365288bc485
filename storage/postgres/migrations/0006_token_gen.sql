-- Access tokens carry the generation of the user's credentials they were
-- issued under; a password change raises it, so tokens issued before the
-- change are refused although they have not expired.
ALTER TABLE users ADD COLUMN token_gen bigint NOT NULL DEFAULT 0;
