-- The transactional outbox: a message to publish is written in the same transaction as the
-- state change that causes it, and published after commit; the sweeper republishes rows whose
-- publish was lost. See SPEC section 2 and the saga in section 4.
CREATE TABLE outbox (
    id          uuid        PRIMARY KEY,
    queue       text        NOT NULL,
    body        jsonb       NOT NULL,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer     NOT NULL DEFAULT 0
);

-- The sweeper's scan: unsent rows, oldest first.
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;
