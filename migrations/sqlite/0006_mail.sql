-- Keep this file and the other database's 0006_mail.sql the same but for key and blob types.

-- Every mail read from a mailing list, once per list and Message-ID, as it came (the raw
-- bytes are the record: parsing and series assembly can be redone from them).
CREATE TABLE mail_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list TEXT NOT NULL,
    message_id TEXT NOT NULL,
    -- inbox:PATH#EPOCH, maildir:PATH, mbox, mda
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    raw BLOB NOT NULL,
    UNIQUE (list, message_id)
);

-- How far each incremental source has been read (a public-inbox epoch's last commit), moved in
-- the same transaction as the mail it covers.
CREATE TABLE mail_cursors (
    source TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What was done with each series revision (by its root Message-ID): missing-reported, applied,
-- does-not-apply, concluded, superseded. The series pass acts on a revision once per state.
CREATE TABLE series_revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list TEXT NOT NULL,
    root TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    -- the commit it was applied onto, and the last commit applying it made
    base TEXT,
    tip TEXT,
    superseded_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (list, root)
);
