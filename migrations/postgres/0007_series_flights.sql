-- Keep this file and the other database's 0007_series_flights.sql the same.

-- A flight that tests a mailed series instead of staging. It belongs to its policy's branch,
-- but it is never the branch's running flight, never pushes, and its runs are not evidence
-- about the branch (the code is untrusted).
ALTER TABLE flights ADD COLUMN series_id BIGINT REFERENCES series_revisions(id);

-- What the reply and `pushgate series queue` need once a revision is applied: the policy that
-- tested it, its base as the thread is told it ("master at 1a2b3c4d"), the Message-ID the
-- reply answers, the patches' Message-IDs in order (JSON), and where it was queued.
ALTER TABLE series_revisions ADD COLUMN policy TEXT;
ALTER TABLE series_revisions ADD COLUMN base_said TEXT;
ALTER TABLE series_revisions ADD COLUMN answering TEXT;
ALTER TABLE series_revisions ADD COLUMN patches TEXT;
ALTER TABLE series_revisions ADD COLUMN queued TEXT;
