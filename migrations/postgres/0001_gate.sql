-- The push gate's state. Times are milliseconds since the Unix epoch (portable, sortable).
-- Keep this file and migrations/sqlite/0001_gate.sql the same but for key types.

CREATE TABLE branches (
    id BIGSERIAL PRIMARY KEY,
    policy TEXT NOT NULL UNIQUE,
    repository TEXT NOT NULL,
    staging TEXT NOT NULL,
    target TEXT NOT NULL,
    staging_head TEXT,
    target_head TEXT,
    -- idle, testing, blocked, error
    state TEXT NOT NULL,
    -- the last decision and why, or what is wrong
    message TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What arrived and waits for a decision.
CREATE TABLE candidates (
    id BIGSERIAL PRIMARY KEY,
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    base TEXT NOT NULL,
    tip TEXT NOT NULL,
    -- testing, decided, superseded
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The runs made for one decision.
CREATE TABLE flights (
    id BIGSERIAL PRIMARY KEY,
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    candidate_id BIGINT NOT NULL REFERENCES candidates(id),
    base TEXT NOT NULL,
    tip TEXT NOT NULL,
    -- JSON: the first-parent commits of base..tip, oldest first
    commits TEXT NOT NULL,
    -- running, done, cancelled
    state TEXT NOT NULL,
    verdict TEXT,
    culprit TEXT,
    pushed_to TEXT,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX flights_branch ON flights(branch_id, id);

CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    flight_id BIGINT NOT NULL REFERENCES flights(id),
    commit_index BIGINT NOT NULL,
    sha TEXT NOT NULL,
    -- tip, baseline, bisect
    role TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    sequence TEXT NOT NULL,
    host TEXT NOT NULL,
    -- running, pass, fail, broken, aborted
    state TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX runs_flight ON runs(flight_id);

CREATE TABLE steps (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    -- running, pass, fail, timeout, blocked, broken
    status TEXT NOT NULL,
    exit_code BIGINT,
    log_path TEXT,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX steps_run ON steps(run_id);

CREATE TABLE pushes (
    id BIGSERIAL PRIMARY KEY,
    flight_id BIGINT NOT NULL UNIQUE REFERENCES flights(id),
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    target TEXT NOT NULL,
    old_sha TEXT NOT NULL,
    new_sha TEXT NOT NULL,
    pushed_at BIGINT NOT NULL
);

-- Mail waits here until it is sent, so an SMTP outage or a crash loses nothing.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    flight_id BIGINT REFERENCES flights(id),
    kind TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    -- the whole RFC 5322 message, as it will be sent
    message TEXT NOT NULL,
    -- JSON array of envelope recipients
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT,
    delivered_to TEXT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(sent_at, next_attempt_at);
