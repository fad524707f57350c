-- `runs.flight_id` loses NOT NULL: a job's run has no flight (PostgreSQL's 0003 says
-- `ALTER TABLE runs ALTER COLUMN flight_id DROP NOT NULL`). SQLite's documented way is a new
-- table, copied, with foreign keys off; that cannot be switched inside a migration's
-- transaction, so the store runs this file itself after the numbered migrations, only while
-- the column is still NOT NULL (store/mod.rs, relax_run_flight).
BEGIN IMMEDIATE;
CREATE TABLE runs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flight_id BIGINT REFERENCES flights(id),
    commit_index BIGINT NOT NULL,
    sha TEXT NOT NULL,
    role TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    sequence TEXT NOT NULL,
    host TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    job_id BIGINT REFERENCES jobs(id)
);
INSERT INTO runs_new SELECT id, flight_id, commit_index, sha, role, attempt, sequence, host,
    state, error, created_at, finished_at, job_id FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_flight ON runs(flight_id);
CREATE INDEX runs_job ON runs(job_id);
-- Every index the numbered migrations made on `runs` is made again here (it runs after them).
CREATE INDEX runs_sha ON runs(sha);
CREATE INDEX runs_host ON runs(host, id);
COMMIT;
