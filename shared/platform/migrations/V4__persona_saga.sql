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
