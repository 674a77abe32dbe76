-- Bulk jobs of operators: a retry, cancel or purge of the letters a selection named when the
-- job started. The letters are listed in job_letters in the job's own transaction, so a job
-- always works on the same letters; each letter's change and the mark of its row commit
-- together, so a job interrupted at any moment resumes with the letters still pending and
-- never does one twice.
CREATE TABLE jobs (
    job_id      TEXT    PRIMARY KEY,
    -- The operator's idempotency key (operator and request id): the same request again
    -- returns this job. NULL when the request gave none.
    request_key TEXT    UNIQUE,
    kind        INTEGER NOT NULL,     -- 1 retry, 2 cancel, 3 purge
    operator    TEXT    NOT NULL,
    selection   TEXT    NOT NULL,  -- JSON: sender, route, states, batch, accepted_before
    state       INTEGER NOT NULL,     -- 1 running, 2 done
    total       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX jobs_running ON jobs (state);

CREATE TABLE job_letters (
    job_id    TEXT    NOT NULL,
    letter_id TEXT    NOT NULL,
    status    INTEGER NOT NULL,       -- 0 pending, 1 done, 2 failed (reason says why)
    reason    TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, letter_id)
);
CREATE INDEX job_letters_status ON job_letters (job_id, status);

-- Routes an operator holds (e.g. print during a printer outage): their letters wait, none is
-- tried, and the time held does not count towards a letter's maximum age.
CREATE TABLE route_holds (
    route      INTEGER PRIMARY KEY,   -- as letters.route: 1 mailbox, 2 print
    operator   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    held_since INTEGER NOT NULL
);
-- Holds that ended: what a letter's maximum age leaves out.
CREATE TABLE route_hold_spans (
    route     INTEGER NOT NULL,
    held_from INTEGER NOT NULL,
    held_to   INTEGER NOT NULL
);

-- Dead letters are found by state: a partial index keeps that cheap without costing intake,
-- since few letters ever fail.
CREATE INDEX letters_failed ON letters (accepted_at, letter_id) WHERE state = 5;
