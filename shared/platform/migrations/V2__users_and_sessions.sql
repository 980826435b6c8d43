-- Users are keyed by their identity provider's subject (Google `sub`, or `dev:<hash>` from the
-- local-only dev sign-in). No email is stored.
CREATE TABLE users (
    id                uuid        PRIMARY KEY,
    subject           text        NOT NULL UNIQUE,
    display_name      text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at   timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens: only a SHA-256 hash is stored. Every use rotates the token inside its family;
-- presenting a rotated token again revokes the whole family (RFC 9700 section 4.14.2).
CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY,
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- The append-only crystal ledger; a balance is the sum of a user's entries. A (reason, reference)
-- pair pays at most once per user.
CREATE TABLE crystal_ledger (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount      integer     NOT NULL,
    reason      text        NOT NULL,
    reference   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, reason, reference)
);
