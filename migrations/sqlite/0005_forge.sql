-- Keep this file and the other database's 0005_forge.sql the same but for key types.

-- Where a candidate came from: the gate's own look at staging (`poll`), a webhook delivery
-- (`github:DELIVERY`) or the reconciliation pass (`reconcile`). Queued candidates wait for the
-- gate; one per branch and tip, so a redelivered or repeated push is one candidate.
ALTER TABLE candidates ADD COLUMN source TEXT NOT NULL DEFAULT 'poll';
CREATE UNIQUE INDEX candidates_queued ON candidates(branch_id, tip) WHERE state = 'queued';

-- The culprit finder's log of a concluded flight (JSON array of lines), for its page: the
-- first bad commit's check run links there.
ALTER TABLE flights ADD COLUMN finder_log TEXT;

-- A maintainer's hold on a branch (OSSTest's block file, bors's treeclosed): while set, the
-- gate plans nothing and pushes nothing.
ALTER TABLE branches ADD COLUMN hold TEXT;

-- What maintainers told pushgate to do, and what came of it: block, unblock, retry, force.
CREATE TABLE overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    action TEXT NOT NULL,
    rev TEXT,
    who TEXT NOT NULL,
    why TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    done_at BIGINT,
    outcome TEXT
);
CREATE INDEX overrides_pending ON overrides(branch_id, done_at);

-- Statuses, check runs and comments wait here until the forge has taken them, like mail.
CREATE TABLE forge_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- makes enqueueing idempotent: the same report composed twice is posted once
    dedupe_key TEXT NOT NULL UNIQUE,
    repository TEXT NOT NULL,
    -- status, check, comment
    kind TEXT NOT NULL,
    -- the commit a status or check is about, or the commit a comment answers
    sha TEXT,
    -- the pull request or issue a comment goes to
    issue BIGINT,
    -- the status context or check name
    context TEXT NOT NULL,
    -- pending, success, failure, neutral, cancelled (for comments: comment)
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    target_url TEXT,
    flight_id BIGINT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT,
    -- the check run's id, so that the final report updates the pending one
    remote_id BIGINT,
    -- what happened: posted, superseded, refused
    outcome TEXT,
    last_error TEXT
);
CREATE INDEX forge_outbox_due ON forge_outbox(sent_at, next_attempt_at);
CREATE INDEX forge_outbox_commit ON forge_outbox(repository, sha, context);
