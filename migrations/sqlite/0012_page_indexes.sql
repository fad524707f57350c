-- What the pages read by, so that none reads a whole table: a flight's mail, a host's runs
-- (newest first), a submitter's jobs.
CREATE INDEX outbox_flight ON outbox(flight_id);
CREATE INDEX runs_host ON runs(host, id);
CREATE INDEX jobs_submitter ON jobs(submitter, id);
