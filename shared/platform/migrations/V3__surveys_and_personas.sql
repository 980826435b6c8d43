-- Surveys and their encrypted responses, and the persona job the third answer starts.

CREATE TABLE surveys (
    id                     uuid        PRIMARY KEY,
    owner_id               uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title                  text        NOT NULL,
    question_bank_version  integer     NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('collecting', 'closed')),
    response_count         integer     NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL,
    expires_at             timestamptz NOT NULL,
    closed_at              timestamptz
);
-- One collecting survey per owner at a time; a race between two creates ends in a 409.
CREATE UNIQUE INDEX surveys_one_collecting_per_owner ON surveys (owner_id) WHERE status = 'collecting';
CREATE INDEX surveys_by_owner ON surveys (owner_id, created_at DESC, id DESC);

-- Answers, sealed with AES-256-GCM (associated data: survey id || response id). Deliberately no
-- timestamp and a random (v4) id: nothing orders responses in time, so an owner cannot pin an
-- answer on the friend who just sent it.
CREATE TABLE survey_responses (
    id          uuid    PRIMARY KEY,
    survey_id   uuid    NOT NULL REFERENCES surveys (id) ON DELETE CASCADE,
    key_id      text    NOT NULL,
    nonce       bytea   NOT NULL,
    ciphertext  bytea   NOT NULL
);
CREATE INDEX survey_responses_by_survey ON survey_responses (survey_id);

-- Personas and their saga state. `state_version` is the compare-and-set counter of every
-- transition; the saga issue adds the synthesized fields.
CREATE TABLE personas (
    id              uuid        PRIMARY KEY,
    owner_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    survey_id       uuid        NOT NULL REFERENCES surveys (id) ON DELETE CASCADE,
    version         integer     NOT NULL,
    state           text        NOT NULL CHECK (state IN ('queued', 'synthesizing', 'rendering', 'ready', 'failed')),
    state_version   integer     NOT NULL DEFAULT 1,
    response_count  integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, version)
);

-- Stores one answer in one round trip. The survey row lock serializes concurrent answers to a
-- survey, so exactly one of them is the third and starts the persona job, with its outbox row, in
-- the same transaction.
CREATE FUNCTION submit_survey_response(
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
