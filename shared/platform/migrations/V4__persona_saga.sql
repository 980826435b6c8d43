-- What step 1 (synthesize) and step 2 (render_card) produce, and the saga's bookkeeping.
-- Every transition is a compare-and-set on (state, state_version); `updated_at` tells the
-- sweeper which jobs are stuck.
ALTER TABLE personas
    ADD COLUMN name                    text,
    ADD COLUMN archetype               text,
    ADD COLUMN traits                  jsonb,
    ADD COLUMN greeting                text,
    ADD COLUMN system_prompt           text,
    ADD COLUMN charisma                smallint,
    ADD COLUMN intellect               smallint,
    ADD COLUMN kindness                smallint,
    ADD COLUMN energy                  smallint,
    ADD COLUMN synthesized_by          text,
    ADD COLUMN theme                   text    NOT NULL DEFAULT 'default',
    ADD COLUMN cards                   jsonb,
    ADD COLUMN render_generation       integer NOT NULL DEFAULT 0,
    ADD COLUMN is_public               boolean NOT NULL DEFAULT false,
    ADD COLUMN bond_level              integer NOT NULL DEFAULT 0,
    ADD COLUMN failed_step             text,
    ADD COLUMN error_code              text,
    ADD COLUMN error_retryable         boolean,
    ADD COLUMN synthesize_attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN render_attempts         integer NOT NULL DEFAULT 0,
    ADD COLUMN synthesize_started_at   timestamptz,
    ADD COLUMN synthesize_finished_at  timestamptz,
    ADD COLUMN render_started_at       timestamptz,
    ADD COLUMN render_finished_at      timestamptz;

-- The sweeper's scan of unfinished jobs.
CREATE INDEX personas_unfinished ON personas (updated_at) WHERE state IN ('queued', 'synthesizing', 'rendering');
-- Public persona pages and the owner's latest persona.
CREATE INDEX personas_by_owner ON personas (owner_id, version DESC);

-- The next persona version of an owner is computed under a lock on the owner's row, so a third
-- answer and a synthesize request racing each other cannot both take the same version.
CREATE OR REPLACE FUNCTION submit_survey_response(
    p_survey uuid, p_response uuid, p_key_id text, p_nonce bytea, p_ciphertext bytea,
    p_threshold integer, p_persona uuid, p_outbox uuid, p_request_id text, p_now timestamptz
) RETURNS TABLE (outcome text, response_count integer, persona_id uuid, persona_version integer, owner_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    s surveys%ROWTYPE;
    n integer;
    v integer;
BEGIN
    SELECT * INTO s FROM surveys WHERE id = p_survey FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, 0, NULL::uuid, NULL::integer, NULL::uuid;
        RETURN;
    END IF;
    IF s.status <> 'collecting' OR s.expires_at <= p_now THEN
        RETURN QUERY SELECT 'gone'::text, s.response_count, NULL::uuid, NULL::integer, s.owner_id;
        RETURN;
    END IF;
    INSERT INTO survey_responses (id, survey_id, key_id, nonce, ciphertext)
        VALUES (p_response, p_survey, p_key_id, p_nonce, p_ciphertext);
    UPDATE surveys SET response_count = surveys.response_count + 1 WHERE id = p_survey
        RETURNING surveys.response_count INTO n;
    IF n = p_threshold THEN
        PERFORM 1 FROM users WHERE id = s.owner_id FOR UPDATE;
        SELECT COALESCE(max(version), 0) + 1 INTO v FROM personas WHERE personas.owner_id = s.owner_id;
        INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count)
            VALUES (p_persona, s.owner_id, p_survey, v, 'queued', 1, n);
        INSERT INTO outbox (id, queue, body, request_id)
            VALUES (p_outbox, 'synthesize', jsonb_build_object('persona_id', p_persona), p_request_id);
        RETURN QUERY SELECT 'started'::text, n, p_persona, v, s.owner_id;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'accepted'::text, n, NULL::uuid, NULL::integer, s.owner_id;
END;
$$;
