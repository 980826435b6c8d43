-- Chat with your persona (F-003). The chat belongs to the owner, across persona versions: the
-- newest ready version speaks, and bond, quota and memory are the owner's.

-- One row per owner who ever chatted: the bond, the day's counters (the day is the calendar day
-- in the quest time zone), the exchange count that schedules memory notes, and refusals. The
-- row is locked by every message of its owner, so the quota and the bond cap are exact.
CREATE TABLE chats (
    owner_id        uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bond_points     integer     NOT NULL DEFAULT 0 CHECK (bond_points >= 0),
    day             date        NOT NULL,
    messages_today  integer     NOT NULL DEFAULT 0,
    bond_today      integer     NOT NULL DEFAULT 0,
    -- Exchanges the persona answered in conversation (not safety replies); every tenth queues a
    -- memory note.
    exchanges       integer     NOT NULL DEFAULT 0,
    -- Messages refused by the safety check: only this count is kept of them.
    refusals        integer     NOT NULL DEFAULT 0
);

-- Messages, sealed with AES-256-GCM (associated data: owner id || message id). `exchange_no`
-- numbers the owner's conversational exchanges (both messages of one exchange carry it); it is
-- NULL for safety exchanges (never shown to the model) and for a message still awaiting its
-- reply. The idempotency key is kept only as a SHA-256, on the user's message.
CREATE TABLE chat_messages (
    id                uuid        PRIMARY KEY,
    owner_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    persona_id        uuid        NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    role              text        NOT NULL CHECK (role IN ('user', 'persona')),
    source            text        CHECK (source IN ('llm', 'fallback', 'safety')),
    reply_to          uuid        REFERENCES chat_messages (id) ON DELETE CASCADE,
    exchange_no       integer,
    idempotency_key   bytea,
    key_id            text        NOT NULL,
    nonce             bytea       NOT NULL,
    ciphertext        bytea       NOT NULL,
    created_at        timestamptz NOT NULL,
    CHECK ((role = 'user') = (source IS NULL)),
    CHECK ((role = 'persona') = (reply_to IS NOT NULL))
);
-- History, newest first.
CREATE INDEX chat_messages_by_owner ON chat_messages (owner_id, created_at DESC, id DESC);
-- The model's context (the last exchanges) and memory folding (exchange ranges).
CREATE INDEX chat_messages_by_exchange ON chat_messages (owner_id, exchange_no) WHERE exchange_no IS NOT NULL;
-- One reply per message.
CREATE UNIQUE INDEX chat_messages_one_reply ON chat_messages (reply_to) WHERE reply_to IS NOT NULL;
-- A retried message (same Idempotency-Key) finds its first attempt.
CREATE UNIQUE INDEX chat_messages_idempotency ON chat_messages (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Memory notes: version n folds every exchange up to number 10n (on top of the newest earlier
-- note). Sealed like messages (associated data: owner id || note id). One note per version,
-- whatever the delivery order or duplicates.
CREATE TABLE chat_memories (
    owner_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    version      integer     NOT NULL CHECK (version > 0),
    id           uuid        NOT NULL UNIQUE,
    covers_upto  integer     NOT NULL,
    written_by   text        NOT NULL,
    key_id       text        NOT NULL,
    nonce        bytea       NOT NULL,
    ciphertext   bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, version)
);
