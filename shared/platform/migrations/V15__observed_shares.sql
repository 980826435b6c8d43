-- Shares pay only once observed (issue "Safety"): the share link carries the share's id, and the
-- share counts (its `persona_shared` event, which the share quest counts) only when the link is
-- opened from another address than the one it was recorded from. `sender_hash` is the keyed
-- hash of the owner's address when recording, kept only until the share is observed.
ALTER TABLE persona_shares
    ADD COLUMN sender_hash text,
    ADD COLUMN observed_at timestamptz;
UPDATE persona_shares SET observed_at = created_at; -- recorded before: they counted then
