-- The card design a persona's cards were rendered with, so a design change can re-render every
-- persona's cards once (resumably: those already on the new design are skipped).
ALTER TABLE personas ADD COLUMN card_design integer NOT NULL DEFAULT 1;
