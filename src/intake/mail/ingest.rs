//! Bringing a list's mail into the store: from an mbox (or an MDA's pipe), a Maildir, or a
//! public-inbox archive read incrementally. Each mail is kept once per list (by Message-ID),
//! so reading the same archive twice changes nothing.

use std::path::Path;

use serde::Serialize;

use super::inbox::{self, Epoch, InboxError};
use super::{mbox, Mail};
use crate::config::policy::ListSource;
use crate::store::{Cursor, ListMail, Store, StoreError};

/// What an ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// Mails read from the source.
    pub read: usize,
    /// Of those, new to the store.
    pub added: u64,
    /// Mails that could not be read, each with where it was and why; they are left out.
    pub unreadable: Vec<String>,
}

impl Ingested {
    /// Counts another source's ingest into this one.
    pub fn absorb(&mut self, other: Ingested) {
        self.read += other.read;
        self.added += other.added;
        self.unreadable.extend(other.unreadable);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Inbox(#[from] InboxError),
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the inbox stopped: {0}")]
    Join(String),
}

/// Messages of a public-inbox read at a time: big enough to be fast, small enough that a
/// restart redoes little.
const INBOX_BATCH: usize = 5_000;

/// Mails parsed at a time, one chunk ahead of the store.
const PARSE_CHUNK: usize = 2_000;

/// Mails to keep, each with the place that names it in errors.
type Gathered = Vec<(String, Vec<u8>)>;

#[derive(Default)]
struct Parsed {
    read: usize,
    mails: Vec<(String, Vec<u8>)>,
    unreadable: Vec<String>,
}

/// Gathers and parses mails on a blocking thread, a chunk ahead, while the async side stores
/// the chunk before: on two cores parsing and SQLite's writing overlap. Each chunk is its own
/// transaction; the cursor moves with the last one, so a crash re-reads (and the store drops)
/// rather than skips.
async fn keep<F>(
    store: &Store,
    list: &str,
    source: &str,
    cursor: Option<&Cursor>,
    gather: F,
) -> Result<Ingested, IngestError>
where
    F: FnOnce() -> Result<Gathered, IngestError> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Parsed, IngestError>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        let gathered = match gather() {
            Ok(g) => g,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut rest = gathered.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Parsed::default();
            for (place, raw) in rest.by_ref().take(PARSE_CHUNK) {
                chunk.read += 1;
                match Mail::parse(&raw) {
                    Ok(m) => chunk.mails.push((m.message_id, raw)),
                    Err(e) => chunk.unreadable.push(format!("{place}: {e}")),
                }
            }
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // the store side failed and stopped listening
            }
        }
    });
    let mut total = Ingested::default();
    let mut pending: Option<Parsed> = None;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        // Store the chunk before this one; the last waits for the cursor.
        if let Some(ready) = pending.replace(chunk) {
            total.absorb(store_chunk(store, list, source, ready, None).await?);
        }
    }
    if let Some(last) = pending {
        total.absorb(store_chunk(store, list, source, last, cursor).await?);
    } else if let Some(c) = cursor {
        store.add_list_mail(list, source, &[], Some(c)).await?;
    }
    producer
        .await
        .map_err(|e| IngestError::Join(e.to_string()))?;
    Ok(total)
}

async fn store_chunk(
    store: &Store,
    list: &str,
    source: &str,
    chunk: Parsed,
    cursor: Option<&Cursor>,
) -> Result<Ingested, IngestError> {
    let batch: Vec<ListMail<'_>> = chunk
        .mails
        .iter()
        .map(|(id, raw)| ListMail {
            message_id: id,
            raw,
        })
        .collect();
    let added = store.add_list_mail(list, source, &batch, cursor).await?;
    Ok(Ingested {
        read: chunk.read,
        added,
        unreadable: chunk.unreadable,
    })
}

/// Every message of an mbox (one bare message counts as an mbox of one, as an MDA hands it).
pub async fn ingest_mbox(
    store: &Store,
    list: &str,
    name: &str,
    data: Vec<u8>,
) -> Result<Ingested, IngestError> {
    let name = name.to_string();
    keep(store, list, "mbox", None, move || {
        Ok(mbox::split(&data)
            .into_iter()
            .enumerate()
            .map(|(i, m)| (format!("{name}: message {}", i + 1), m.into_owned()))
            .collect())
    })
    .await
}

/// Every message in a Maildir's `new` and `cur`.
pub async fn ingest_maildir(
    store: &Store,
    list: &str,
    dir: &Path,
) -> Result<Ingested, IngestError> {
    let dir = dir.to_path_buf();
    let source = format!("maildir:{}", dir.display());
    keep(store, list, &source, None, move || {
        let read_error = |source| IngestError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        for message in
            mail_parser::mailbox::maildir::MessageIterator::new(&dir).map_err(read_error)?
        {
            let message = message.map_err(read_error)?;
            files.push((
                message.path().display().to_string(),
                message.unwrap_contents(),
            ));
        }
        Ok(files)
    })
    .await
}

/// What a public-inbox archive holds that the store has not read yet, epoch by epoch; each
/// batch moves its epoch's cursor in the same transaction.
pub async fn ingest_inbox(store: &Store, list: &str, dir: &Path) -> Result<Ingested, IngestError> {
    let dir = dir.to_path_buf();
    let epochs = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || inbox::epochs(&dir))
            .await
            .map_err(|e| IngestError::Join(e.to_string()))??
    };
    let mut total = Ingested::default();
    for epoch in epochs {
        loop {
            // Per list: the same archive may feed two lists.
            let key = format!("{list}@{}", epoch.cursor_key());
            let since = store.mail_cursor(&key).await?;
            let batch = read_batch(epoch.clone(), since).await?;
            let Some(last) = batch.last().map(|m| m.commit.to_string()) else {
                break;
            };
            let full = batch.len() == INBOX_BATCH;
            let cursor = Cursor {
                source: key.clone(),
                position: last,
            };
            let place = key.clone();
            let gathered: Gathered = batch
                .into_iter()
                .map(|m| (format!("{place}: commit {}", m.commit), m.raw))
                .collect();
            let done = keep(store, list, &key, Some(&cursor), move || Ok(gathered)).await?;
            total.absorb(done);
            if !full {
                break;
            }
        }
    }
    Ok(total)
}

async fn read_batch(
    epoch: Epoch,
    since: Option<String>,
) -> Result<Vec<inbox::InboxMessage>, IngestError> {
    tokio::task::spawn_blocking(move || inbox::read_epoch(&epoch, since.as_deref(), INBOX_BATCH))
        .await
        .map_err(|e| IngestError::Join(e.to_string()))?
        .map_err(IngestError::from)
}

/// Mirrors a remote inbox into `cache` and reads what is new.
pub async fn ingest_remote_inbox(
    store: &Store,
    list: &str,
    url: &str,
    cache: &Path,
) -> Result<Ingested, IngestError> {
    let (url_owned, cache_owned) = (url.to_string(), cache.to_path_buf());
    let dir = tokio::task::spawn_blocking(move || inbox::mirror(&url_owned, &cache_owned))
        .await
        .map_err(|e| IngestError::Join(e.to_string()))??;
    ingest_inbox(store, list, &dir).await
}

/// Reads a public-inbox archive given as a directory or as an http(s) URL (mirrored under
/// `inboxes_dir`).
pub async fn ingest_any_inbox(
    store: &Store,
    list: &str,
    inbox: &str,
    inboxes_dir: &Path,
) -> Result<Ingested, IngestError> {
    if inbox.starts_with("http://") || inbox.starts_with("https://") {
        ingest_remote_inbox(store, list, inbox, &inboxes_dir.join(cache_name(inbox))).await
    } else {
        ingest_inbox(store, list, Path::new(inbox)).await
    }
}

/// Reads what a policy's configured source holds that the store does not.
pub async fn ingest_source(
    store: &Store,
    list: &str,
    source: &ListSource,
    inboxes_dir: &Path,
) -> Result<Ingested, IngestError> {
    match source {
        ListSource::Inbox(inbox) => ingest_any_inbox(store, list, inbox, inboxes_dir).await,
        ListSource::Maildir(dir) => ingest_maildir(store, list, dir).await,
    }
}

/// A directory name for a remote inbox's mirror.
fn cache_name(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses every mail kept for `list`, for assembly; mails that no longer parse are skipped.
pub async fn load_list(store: &Store, list: &str) -> Result<Vec<Mail>, IngestError> {
    let raws = store.list_mail(list).await?;
    Ok(raws
        .iter()
        .filter_map(|raw| Mail::parse(raw).ok())
        .collect())
}
