-- Keep this file and the other database's 0003_hosts_and_jobs.sql the same but for key types
-- and for how `runs.flight_id` loses NOT NULL.

-- A run asked for by hand (`pushgate jobs submit`) or by a policy's schedule (periodic).
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- manual, periodic
    kind TEXT NOT NULL,
    -- periodic jobs (and manual ones on a policy's repository) count towards its baselines
    branch_id BIGINT REFERENCES branches(id),
    sequence TEXT NOT NULL,
    repository TEXT NOT NULL,
    rev TEXT NOT NULL,
    sha TEXT,
    -- the host asked for, or NULL for any that fits
    host TEXT,
    -- NULL, ALL, or a comma-separated list of testcases
    pause_on_fail TEXT,
    email TEXT,
    submitter TEXT NOT NULL,
    -- queued, running, pass, fail, broken, cancelled, completed
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX jobs_state ON jobs(state, id);

-- A job's runs have no flight. Adding the column is done here; dropping NOT NULL from
-- flight_id needs a table rebuild with foreign keys off, which SQLite cannot do inside this
-- migration's transaction: Store::open does it right after (store/mod.rs, RELAX_RUN_FLIGHT).
ALTER TABLE runs ADD COLUMN job_id BIGINT REFERENCES jobs(id);
CREATE INDEX runs_job ON runs(job_id);

-- Who holds which host: a run (renewed while it lives) or a person (`jobs borrow`). One row per
-- slot, so the primary key is what stops two holders, across processes and replicas.
CREATE TABLE leases (
    host TEXT NOT NULL,
    slot BIGINT NOT NULL,
    -- run, borrow
    kind TEXT NOT NULL,
    holder TEXT NOT NULL,
    run_id BIGINT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host, slot)
);

-- Hosts taken out of service after failing runs as `broken` too often in a row.
CREATE TABLE host_health (
    host TEXT PRIMARY KEY,
    broken_streak BIGINT NOT NULL,
    -- in-service, out-of-service
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
