-- Chat memory: one LLM call per (owner, note version), whatever the duplicate deliveries.
--
-- A `summarize_chat` delivery claims the version here before it calls the model; a duplicate
-- that finds a live lease waits for the note (or comes back later) instead of calling the model
-- too. The lease expires after the memory queue's visibility timeout (360 s, template.yaml): a
-- worker that died mid-call leaves a lease that the message's redelivery takes over. The lease
-- goes in the transaction that stores the note, or when an attempt ends without one.
CREATE TABLE chat_memory_leases (
    owner_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version > 0),
    -- Which attempt holds the lease: a late release never ends another attempt's lease.
    claim       uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (owner_id, version)
);
