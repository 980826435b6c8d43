-- Your data: exports and erasures (GDPR Art. 17 and 20).

-- An owner's data exports. The object key is chosen when the export is asked for (256 random
-- bits), so a redelivered job overwrites the same object and an erase finds it. One pending
-- export per owner at a time.
CREATE TABLE data_exports (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state        text        NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
    object_key   text        NOT NULL UNIQUE,
    error_code   text,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    expires_at   timestamptz
);
CREATE UNIQUE INDEX data_exports_one_pending ON data_exports (user_id) WHERE state = 'pending';
CREATE INDEX data_exports_by_user ON data_exports (user_id, created_at DESC);

-- An account being erased: set by `DELETE /v1/me` together with the detached identity
-- (`subject` becomes `erased:<erasure id>`, so a new sign-in makes a new account).
ALTER TABLE users ADD COLUMN erasing_since timestamptz;

-- Erasures in progress: the worker's resumable state. No foreign key (the user row goes in the
-- middle); the row itself goes when the erase is done. `subject_hash` is a keyed hash of the
-- identity subject, written to the erasure journal (DynamoDB) for re-application after a
-- database restore.
CREATE TABLE account_erasures (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL UNIQUE,
    subject_hash    text        NOT NULL,
    requested_at    timestamptz NOT NULL,
    persona_ids     uuid[],
    export_keys     text[],
    rows_erased_at  timestamptz
);
