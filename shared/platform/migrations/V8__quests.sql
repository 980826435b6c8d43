-- Quests and crystals (F-006): what each ledger entry pays for, the balance projection, and the
-- rules that keep the two in agreement.
--
-- A quest claim and a daily check-in each append one `crystal_ledger` row. Its `reference` says
-- what it pays for (`first_survey`, `daily_bond@2026-12-01`, or the check-in's day), and the
-- unique (user_id, reason, reference) constraint of V2 makes a period pay at most once however
-- many claims race. The balance is never written by application code: a trigger on the ledger
-- adds each entry to `crystal_balances` inside the inserting statement, no other write to the
-- balances is accepted, and ledger rows can neither change nor disappear while their user
-- exists. So the ledger sum and the balance cannot disagree.

ALTER TABLE crystal_ledger
    ADD COLUMN quest_id     text,
    ADD COLUMN period_start timestamptz,
    ADD COLUMN check_in_day date,
    ADD COLUMN streak       integer;

ALTER TABLE crystal_ledger ADD CONSTRAINT crystal_ledger_pays_for CHECK (
    (reason = 'quest_reward' AND amount > 0 AND quest_id IS NOT NULL
        AND check_in_day IS NULL AND streak IS NULL)
    OR (reason = 'daily_check_in' AND amount > 0 AND check_in_day IS NOT NULL AND streak >= 1
        AND quest_id IS NULL AND period_start IS NULL)
);

-- `GET /v1/me/ledger`, newest first.
CREATE INDEX crystal_ledger_newest_first ON crystal_ledger (user_id, created_at DESC, id DESC);
-- The latest check-in, for the streak.
CREATE INDEX crystal_ledger_check_ins ON crystal_ledger (user_id, check_in_day DESC)
    WHERE reason = 'daily_check_in';

CREATE TABLE crystal_balances (
    user_id  uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance  bigint NOT NULL CHECK (balance >= 0)
);
INSERT INTO crystal_balances (user_id, balance)
    SELECT user_id, sum(amount) FROM crystal_ledger GROUP BY user_id;

-- Ledger rows go only with their user (ON DELETE CASCADE runs after the user row is gone).
CREATE FUNCTION crystal_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'crystal_ledger is append-only (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER crystal_ledger_append_only BEFORE UPDATE OR DELETE ON crystal_ledger
    FOR EACH ROW EXECUTE FUNCTION crystal_ledger_append_only();
CREATE TRIGGER crystal_ledger_no_truncate BEFORE TRUNCATE ON crystal_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION crystal_ledger_append_only();

-- The projection: each new entry moves its user's balance, in the same statement.
CREATE FUNCTION crystal_balance_project() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crystal_balances AS b (user_id, balance) VALUES (NEW.user_id, NEW.amount)
        ON CONFLICT (user_id) DO UPDATE SET balance = b.balance + EXCLUDED.balance;
    RETURN NULL;
END;
$$;
CREATE TRIGGER crystal_ledger_projects_balance AFTER INSERT ON crystal_ledger
    FOR EACH ROW EXECUTE FUNCTION crystal_balance_project();

-- Balances are written only by the projection above (a trigger nested in the ledger insert)
-- and deleted only with their user.
CREATE FUNCTION crystal_balances_from_ledger_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id) THEN
            RETURN OLD;
        END IF;
    ELSIF TG_OP <> 'TRUNCATE' AND pg_trigger_depth() > 1 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'crystal_balances is a projection of crystal_ledger (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER crystal_balances_from_ledger_only BEFORE INSERT OR UPDATE OR DELETE ON crystal_balances
    FOR EACH ROW EXECUTE FUNCTION crystal_balances_from_ledger_only();
CREATE TRIGGER crystal_balances_no_truncate BEFORE TRUNCATE ON crystal_balances
    FOR EACH STATEMENT EXECUTE FUNCTION crystal_balances_from_ledger_only();
