-- Safety (issue "Safety").

-- Chat instructions are ours: assembled from a fixed template and the persona's validated
-- fields on every reply. The text the synthesis LLM once wrote as instructions is dropped, so
-- nothing stored keeps acting.
ALTER TABLE personas DROP COLUMN system_prompt;

-- Reports on public personas. A reporter counts once per persona (the owner's persona as a
-- whole, every version): only a keyed hash of the reporter is kept.
CREATE TABLE persona_reports (
    owner_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reporter_hash  text        NOT NULL,
    persona_id     uuid        NOT NULL,
    reason         text        NOT NULL CHECK (reason IN ('spam', 'harassment', 'hate', 'sexual',
                                                          'self_harm', 'impersonation', 'other')),
    note           text        CHECK (char_length(note) <= 500),
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (owner_id, reporter_hash)
);

-- A persona hidden by reports (or removed by ops): its public view, page, image and
-- compatibility answer 404, whatever the owner's visibility choice, for every version, later
-- ones included. The owner still sees it and chats with it.
CREATE TABLE persona_moderation (
    owner_id  uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    state     text        NOT NULL CHECK (state IN ('hidden', 'removed')),
    since     timestamptz NOT NULL
);

-- Works whatever alias a query gives `personas` (like persona_is_public).
CREATE FUNCTION persona_is_hidden(p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM persona_moderation WHERE owner_id = p_owner)
$$;
