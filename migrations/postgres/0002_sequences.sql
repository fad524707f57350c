-- Keep this file and the other database's 0002_sequences.sql the same but for key types.

-- Per-test results parsed from the files a step leaves (JUnit XML, TAP, subunit v2).
CREATE TABLE sub_results (
    id BIGSERIAL PRIMARY KEY,
    step_id BIGINT NOT NULL REFERENCES steps(id),
    name TEXT NOT NULL,
    -- pass, fail, skip, error
    status TEXT NOT NULL,
    duration_ms BIGINT,
    message TEXT
);
CREATE INDEX sub_results_step ON sub_results(step_id);

-- A run waiting after a failing testcase (pause-on-fail) until someone lets it go on.
CREATE TABLE pauses (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    step_id BIGINT NOT NULL REFERENCES steps(id),
    testcase TEXT NOT NULL,
    paused_at BIGINT NOT NULL,
    -- When it goes on by itself; NULL waits until told.
    resume_at BIGINT,
    continued_at BIGINT,
    -- interact, timeout
    continued_by TEXT
);
CREATE INDEX pauses_run ON pauses(run_id);
