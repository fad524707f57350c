//! Bringing a list's mail into the store: from an mbox (or an MDA's pipe), a Maildir, or a
//! public-inbox archive read incrementally. Each mail is kept once per list (by Message-ID),
//! so reading the same archive twice changes nothing.

use std::path::Path;

use serde::Serialize;

use super::inbox::{self, Epoch, InboxError};
use super::{mbox, Mail};
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

/// Messages of a public-inbox read per transaction: big enough to be fast, small enough that
/// a restart redoes little.
const INBOX_BATCH: usize = 5_000;

/// Parses `raws` and keeps the readable ones; `place` names a message in errors.
async fn keep(
    store: &Store,
    list: &str,
    source: &str,
    raws: &[&[u8]],
    place: impl Fn(usize) -> String,
    cursor: Option<&Cursor>,
) -> Result<Ingested, IngestError> {
    let mut ids: Vec<(String, &[u8])> = Vec::with_capacity(raws.len());
    let mut unreadable = Vec::new();
    for (i, raw) in raws.iter().enumerate() {
        match Mail::parse(raw) {
            Ok(m) => ids.push((m.message_id, raw)),
            Err(e) => unreadable.push(format!("{}: {e}", place(i))),
        }
    }
    let batch: Vec<ListMail<'_>> = ids
        .iter()
        .map(|(id, raw)| ListMail {
            message_id: id,
            raw,
        })
        .collect();
    let added = store.add_list_mail(list, source, &batch, cursor).await?;
    Ok(Ingested {
        read: raws.len(),
        added,
        unreadable,
    })
}

/// Every message of an mbox (one bare message counts as an mbox of one, as an MDA hands it).
pub async fn ingest_mbox(
    store: &Store,
    list: &str,
    name: &str,
    data: &[u8],
) -> Result<Ingested, IngestError> {
    let messages = mbox::split(data);
    let raws: Vec<&[u8]> = messages.iter().map(|m| m.as_ref()).collect();
    keep(
        store,
        list,
        "mbox",
        &raws,
        |i| format!("{name}: message {}", i + 1),
        None,
    )
    .await
}

/// Every message in a Maildir's `new` and `cur`.
pub async fn ingest_maildir(
    store: &Store,
    list: &str,
    dir: &Path,
) -> Result<Ingested, IngestError> {
    let read_error = |source| IngestError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for message in mail_parser::mailbox::maildir::MessageIterator::new(dir).map_err(read_error)? {
        let message = message.map_err(read_error)?;
        files.push((
            message.path().display().to_string(),
            message.unwrap_contents(),
        ));
    }
    let raws: Vec<&[u8]> = files.iter().map(|(_, raw)| raw.as_slice()).collect();
    keep(
        store,
        list,
        &format!("maildir:{}", dir.display()),
        &raws,
        |i| files[i].0.clone(),
        None,
    )
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
            let raws: Vec<&[u8]> = batch.iter().map(|m| m.raw.as_slice()).collect();
            let cursor = Cursor {
                source: key.clone(),
                position: last,
            };
            let done = keep(
                store,
                list,
                &key,
                &raws,
                |i| format!("{key}: commit {}", batch[i].commit),
                Some(&cursor),
            )
            .await?;
            let full = batch.len() == INBOX_BATCH;
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

/// Parses every mail kept for `list`, for assembly; mails that no longer parse are skipped.
pub async fn load_list(store: &Store, list: &str) -> Result<Vec<Mail>, IngestError> {
    let raws = store.list_mail(list).await?;
    Ok(raws
        .iter()
        .filter_map(|raw| Mail::parse(raw).ok())
        .collect())
}
