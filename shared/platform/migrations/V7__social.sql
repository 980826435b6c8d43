-- Social (F-005): visibility of the owner's persona as a whole, and the shares that feed the
-- share quest.

-- Visibility belongs to the owner's persona, not to one version: publishing shows the newest
-- ready version (today's and every later one), unpublishing hides every version at once. One
-- row per owner who ever chose; no row means private.
CREATE TABLE persona_visibility (
    owner_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    is_public   boolean     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Whether an owner's persona is public; persona queries select it for every version
-- (`persona_is_public(owner_id)`, which works whatever alias the query gives `personas`).
CREATE FUNCTION persona_is_public(p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM persona_visibility WHERE owner_id = p_owner AND is_public)
$$;

-- Carry over what owners chose under the per-version flag. The owner's last choice is the flag
-- of their newest version with cards (PATCH always wrote that one); an older version left
-- public by the old behaviour does not make the persona public.
INSERT INTO persona_visibility (owner_id, is_public)
SELECT DISTINCT ON (owner_id) owner_id, is_public
FROM personas
WHERE cards IS NOT NULL
ORDER BY owner_id, version DESC;

-- Expand and contract: running code of the previous release still reads the column, so it
-- stays until a later migration drops it; nothing reads or writes it from this release on.
COMMENT ON COLUMN personas.is_public IS 'superseded by persona_visibility (V7); unused, to be dropped';

-- Every share the owner reported, with its channel (a product metric). The domain event
-- `persona_shared` is written in the same transaction; quests count the events.
CREATE TABLE persona_shares (
    id          uuid        PRIMARY KEY,
    owner_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    persona_id  uuid        NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    channel     text        NOT NULL CHECK (channel IN ('link', 'qr', 'instagram', 'kakao', 'x', 'other')),
    created_at  timestamptz NOT NULL
);
CREATE INDEX persona_shares_by_owner ON persona_shares (owner_id, created_at DESC);
