-- Keep this file and the other database's 0008_forge_reports.sql the same but for how an index
-- is renamed.
-- "Outbox" means mail waiting to be sent, nothing else: statuses, check runs and comments wait
-- for the forge in `forge_reports`.
ALTER TABLE forge_outbox RENAME TO forge_reports;
DROP INDEX forge_outbox_due;
DROP INDEX forge_outbox_commit;
CREATE INDEX forge_reports_due ON forge_reports(sent_at, next_attempt_at);
CREATE INDEX forge_reports_commit ON forge_reports(repository, sha, context);
