-- Domain events: what a user did (or what happened to them), written in the same transaction as
-- the action, so an action that rolls back leaves no event. Quests count them. Events carry no
-- user content, only who, what and when.
--
-- `response_received` is stamped with the UTC day only (never the instant): no per-answer time
-- exists anywhere (SPEC "Anonymity"), and no daily or weekly quest counts answers.
CREATE TABLE domain_events (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('survey_created', 'response_received', 'persona_shared', 'chat_sent')),
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX domain_events_by_user ON domain_events (user_id, kind, occurred_at);

-- The third-answer function again, now also recording `response_received` for the owner.
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
            VALUES (p_outbox, 'synthesize', jsonb_build_object('persona_id', p_persona), p_request_id);
        RETURN QUERY SELECT 'started'::text, n, p_persona, v, s.owner_id;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'accepted'::text, n, NULL::uuid, NULL::integer, s.owner_id;
END;
$$;
