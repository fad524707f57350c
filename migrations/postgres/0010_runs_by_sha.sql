-- Keep this file and the other database's 0010_runs_by_sha.sql the same.
-- A flight reads earlier flights' runs of its own commits only (by sha), so that its cost
-- does not grow with the branch's history.
CREATE INDEX runs_sha ON runs(sha);
