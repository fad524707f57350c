-- Keep this file and the other database's 0011_passed_steps.sql the same.
-- The steps that have passed on each branch, kept as they pass, so that a flight asks "did
-- this step ever pass here?" without reading the branch's whole history. `source` is 'flight'
-- (with the first staging flight it passed in) or 'job' (a periodic or hand-made run on the
-- branch, which counts for every flight).
CREATE TABLE passed_steps (
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    step TEXT NOT NULL,
    source TEXT NOT NULL,
    first_flight_id BIGINT,
    PRIMARY KEY (branch_id, step, source)
);
INSERT INTO passed_steps (branch_id, step, source, first_flight_id)
SELECT flights.branch_id, runs.sequence || '/' || steps.name, 'flight', MIN(flights.id)
FROM steps JOIN runs ON runs.id = steps.run_id JOIN flights ON flights.id = runs.flight_id
WHERE steps.status = 'pass' AND flights.series_id IS NULL
GROUP BY flights.branch_id, runs.sequence || '/' || steps.name;
INSERT INTO passed_steps (branch_id, step, source, first_flight_id)
SELECT DISTINCT jobs.branch_id, runs.sequence || '/' || steps.name, 'job', CAST(NULL AS BIGINT)
FROM steps JOIN runs ON runs.id = steps.run_id JOIN jobs ON jobs.id = runs.job_id
WHERE steps.status = 'pass' AND jobs.branch_id IS NOT NULL;
