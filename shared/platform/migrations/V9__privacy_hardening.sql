-- Privacy and robustness hardening (issue "Privacy and security hardening").

-- The progress route owners poll reads a survey's newest persona; without this it scans.
CREATE INDEX personas_by_survey ON personas (survey_id, version DESC);

-- Which synthesis run a synthesize message belongs to (render messages carry
-- `render_generation`): a stale dead letter of an earlier run must not fail a fresh retry.
ALTER TABLE personas ADD COLUMN synthesize_generation integer NOT NULL DEFAULT 1;

-- The sweeper prunes expired refresh tokens and old sent outbox rows.
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- The answer function again: the synthesize message names its run (generation 1), and the
-- function also returns how many of the survey's answers the newest persona version saw, so the
-- owner can be told how many more a new version needs.
DROP FUNCTION submit_survey_response(uuid, uuid, text, bytea, bytea, integer, uuid, uuid, text, timestamptz);
CREATE FUNCTION submit_survey_response(
    p_survey uuid, p_response uuid, p_key_id text, p_nonce bytea, p_ciphertext bytea,
    p_threshold integer, p_persona uuid, p_outbox uuid, p_request_id text, p_now timestamptz
) RETURNS TABLE (outcome text, response_count integer, persona_id uuid, persona_version integer,
                 owner_id uuid, seen_count integer)
LANGUAGE plpgsql AS $$
DECLARE
    s surveys%ROWTYPE;
    n integer;
    v integer;
    seen integer;
BEGIN
    SELECT * INTO s FROM surveys WHERE id = p_survey FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, 0, NULL::uuid, NULL::integer, NULL::uuid, 0;
        RETURN;
    END IF;
    IF s.status <> 'collecting' OR s.expires_at <= p_now THEN
        RETURN QUERY SELECT 'gone'::text, s.response_count, NULL::uuid, NULL::integer, s.owner_id, 0;
        RETURN;
    END IF;
    INSERT INTO survey_responses (id, survey_id, key_id, nonce, ciphertext)
        VALUES (p_response, p_survey, p_key_id, p_nonce, p_ciphertext);
    INSERT INTO domain_events (id, user_id, kind, occurred_at)
        VALUES (gen_random_uuid(), s.owner_id, 'response_received', date_trunc('day', p_now, 'UTC'));
    UPDATE surveys SET response_count = surveys.response_count + 1 WHERE id = p_survey
        RETURNING surveys.response_count INTO n;
    IF n = p_threshold THEN
        PERFORM 1 FROM users WHERE id = s.owner_id FOR UPDATE;
        SELECT COALESCE(max(version), 0) + 1 INTO v FROM personas WHERE personas.owner_id = s.owner_id;
        INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count)
            VALUES (p_persona, s.owner_id, p_survey, v, 'queued', 1, n);
        INSERT INTO outbox (id, queue, body, request_id)
            VALUES (p_outbox, 'synthesize',
                    jsonb_build_object('persona_id', p_persona, 'generation', 1), p_request_id);
        RETURN QUERY SELECT 'started'::text, n, p_persona, v, s.owner_id, n;
        RETURN;
    END IF;
    SELECT COALESCE(max(p.response_count), 0) INTO seen FROM personas p WHERE p.survey_id = p_survey;
    RETURN QUERY SELECT 'accepted'::text, n, NULL::uuid, NULL::integer, s.owner_id, seen;
END;
$$;

-- The sweeper asks, per stuck-looking job, when its last message went out.
CREATE INDEX outbox_by_persona ON outbox ((body->>'persona_id'), created_at DESC);
