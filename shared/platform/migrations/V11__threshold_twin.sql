-- The answer function becomes the database-side twin of one rule that lives in Rust
-- (`personas::threshold`): "the survey's third answer makes the owner's next persona version,
-- born in the state `lifecycle::next(awaiting_responses, threshold reached)` gives, with its
-- synthesize message in the outbox". Rust now hands in everything that rule decides: the
-- version's first state, and the outbox row exactly as `outbox::enqueue` would write it (id,
-- queue, body). The function only decides *whether* this answer is the third, in the same
-- statement that stores it, so an answer still costs one round trip. A test stores a third
-- answer and compares the rows with the Rust rule.
DROP FUNCTION submit_survey_response(uuid, uuid, text, bytea, bytea, integer, uuid, uuid, text, timestamptz);
CREATE FUNCTION submit_survey_response(
    p_survey uuid, p_response uuid, p_key_id text, p_nonce bytea, p_ciphertext bytea,
    p_threshold integer, p_persona uuid, p_persona_state text,
    p_outbox uuid, p_outbox_queue text, p_outbox_body jsonb, p_request_id text, p_now timestamptz
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
            VALUES (p_persona, s.owner_id, p_survey, v, p_persona_state, 1, n);
        INSERT INTO outbox (id, queue, body, request_id)
            VALUES (p_outbox, p_outbox_queue, p_outbox_body, p_request_id);
        RETURN QUERY SELECT 'started'::text, n, p_persona, v, s.owner_id, n;
        RETURN;
    END IF;
    SELECT COALESCE(max(p.response_count), 0) INTO seen FROM personas p WHERE p.survey_id = p_survey;
    RETURN QUERY SELECT 'accepted'::text, n, NULL::uuid, NULL::integer, s.owner_id, seen;
END;
$$;
