//! The store: every candidate, flight, run, step, push and mail, so that a restart resumes where
//! it stopped and several processes could share the work.
//!
//! One code path serves SQLite (the default, a file in WAL mode) and PostgreSQL: queries are
//! plain SQL with `$N` parameters over sqlx's `Any` driver, and the two migration sets differ
//! only in key types. Times are milliseconds since the Unix epoch.

mod branches;
pub mod disk;
mod flights;
mod forge;
mod jobs;
mod leases;
mod mail;
mod outbox;
mod results;
mod runs;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use branches::{BranchKey, BranchRow};
pub use flights::{BlameRow, Conclusion, FlightFilter, FlightRow, FlightState, PushRow};
pub use forge::{NewReport, OverrideRow, PushedCandidate, Recorded, ReportKind, ReportRow};
pub use jobs::{JobRow, JobState, NewJob};
pub use leases::{BorrowRefusal, HealthRow, LeaseRow};
pub use mail::{AppliedSeries, Cursor, ListMail, SeriesRecord, SeriesRow};
pub use outbox::{MailRow, NewMail};
pub use results::{PauseRow, SubResultRow};
pub use runs::{NewRun, RunOwner, RunRow, RunState, StepRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot reach the database {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the database's directory: {0}")]
    Directory(#[from] disk::NotWritable),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the store holds something this version cannot read: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// SQLite has one writer at a time, and a writer that finds the database locked sleeps in
    /// SQLite's busy handler (up to 100 ms a turn). Hot write paths queue here instead, in
    /// order and without sleeping; `None` on PostgreSQL.
    writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            if let Some(dir) = sqlite_dir(url).filter(|d| !d.as_os_str().is_empty()) {
                disk::check_writable(dir)?;
            }
        } else {
            reachable(url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets the web pages read while the gate writes; the busy timeout
                        // lets two writers wait for each other instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        if sqlite {
            // sqlx locks migrations on PostgreSQL but not on SQLite: two processes creating a
            // new file at once both try. A lock file beside the database serialises them (a
            // migration that rebuilds a table runs outside sqlx's transaction); the retries
            // cover a database with no file to lock beside.
            let _lock = match sqlite_file(url) {
                Some(file) if !file.is_empty() && file != ":memory:" => {
                    // Waiting for the lock blocks: not on a runtime thread, which the holder
                    // (another task here) may need to finish and let go. Without the file
                    // (it cannot be made) the migration runs unlocked, as it did before.
                    let path = std::path::PathBuf::from(format!("{file}.migrate-lock"));
                    tokio::task::spawn_blocking(move || crate::file_lock::FileLock::take(&path))
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                _ => None,
            };
            let mut tries = 0;
            while let Err(e) = SQLITE.run(&pool).await {
                tries += 1;
                if tries == 5 {
                    return Err(e.into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
            }
            relax_run_flight(&pool).await?;
        } else {
            POSTGRES.run(&pool).await?;
        }
        let writer = sqlite.then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        Ok(Store { pool, writer })
    }

    /// Whether the database at `url` can be used, asked without opening, making or migrating
    /// it (`pushgate check`); says what it found.
    pub async fn probe(url: &str) -> Result<String> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let file = sqlite_file(url).unwrap_or("");
            if file.is_empty() || file == ":memory:" {
                return Ok("SQLite in memory".into());
            }
            if let Some(dir) = sqlite_dir(url).filter(|d| !d.as_os_str().is_empty()) {
                disk::could_write(dir)?;
            }
            let made = if std::path::Path::new(file).exists() {
                "exists"
            } else {
                "will be made at start"
            };
            return Ok(format!("SQLite {file} ({made})"));
        }
        reachable(url).await?;
        Ok(format!("{} answers", redact(url)))
    }

    /// Waits for this process's turn to write (SQLite); nothing on PostgreSQL.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(w) => Some(w.lock().await),
            None => None,
        }
    }

    /// The row of `table` with this id. `table` is one of the store's own names, never input.
    async fn by_id<T>(&self, table: &'static str, id: i64) -> Result<Option<T>>
    where
        T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = format!("SELECT * FROM {table} WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The directory of an SQLite URL's file, to create it on first start.
fn sqlite_dir(url: &str) -> Option<&std::path::Path> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next()?;
    std::path::Path::new(path).parent()
}

/// Rebuilds `runs` without NOT NULL on `flight_id` (a job's run has no flight), as 0003 does
/// on PostgreSQL. SQLite cannot drop a constraint in place; its documented way is a new table,
/// copied, with foreign keys off, which cannot be switched inside the transaction sqlx runs a
/// migration in. So the SQL lives beside the migrations, outside sqlx's numbered set, and runs
/// here after them. Idempotent: it runs only while the column is still NOT NULL.
const RELAX_RUN_FLIGHT: &str =
    include_str!("../../migrations/sqlite/rebuilds/runs_flight_nullable.sql");

async fn relax_run_flight(pool: &AnyPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let row = sqlx::query(
        "SELECT \"notnull\" AS nn FROM pragma_table_info('runs') WHERE name = 'flight_id'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let not_null: i64 = get(&row, "nn")?;
    if not_null == 0 {
        return Ok(());
    }
    conn.execute("PRAGMA foreign_keys = OFF").await?;
    let rebuilt = conn.execute(RELAX_RUN_FLIGHT).await;
    if rebuilt.is_err() {
        let _ = conn.execute("ROLLBACK").await;
    }
    conn.execute("PRAGMA foreign_keys = ON").await?;
    rebuilt?;
    Ok(())
}

/// How long the first connection to a database server may take before it is said to be
/// unreachable (a host that drops packets would hold TCP's own two minutes).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One connection, made and closed, to say at once why a server cannot be reached: the pool
/// retries a refused connection until its timeout and then says only "pool timed out".
async fn reachable(url: &str) -> Result<()> {
    use sqlx::Connection;
    let unreachable = |message: String| StoreError::Unreachable {
        url: redact(url),
        message,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(url)).await {
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// The file of an SQLite URL.
fn sqlite_file(url: &str) -> Option<&str> {
    url.trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
}

/// A URL with its password (anything before `@`) left out, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Now, in the store's unit.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A row read into its type with `sqlx::FromRow`, failing with the store's error.
fn read<T>(row: &AnyRow) -> Result<T>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow>,
{
    Ok(T::from_row(row)?)
}

/// Lets `#[sqlx(try_from = "String")]` read an enum stored as its word (strum's).
macro_rules! stored_as_word {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = strum::ParseError;
            fn try_from(word: String) -> std::result::Result<Self, Self::Error> {
                word.parse()
            }
        }
    )*};
}
stored_as_word!(
    RunState,
    JobState,
    ReportKind,
    FlightState,
    crate::decision::Role
);

/// A column of JSON text, for the rows whose `sqlx::FromRow` is written by hand: the `Any`
/// driver has no JSON type. NULL reads as `T`'s default.
fn json<T>(row: &AnyRow, column: &str) -> std::result::Result<T, sqlx::Error>
where
    T: serde::de::DeserializeOwned + Default,
{
    match row.try_get::<Option<String>, _>(column)? {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: Box::new(e),
        }),
    }
}

/// A column holding an enum's word (strum's); NULL reads as `None`.
fn word<T>(row: &AnyRow, column: &str) -> std::result::Result<Option<T>, sqlx::Error>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let Some(text) = row.try_get::<Option<String>, _>(column)? else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|e: T::Err| sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: Box::new(e),
        })
}

/// One column of a row, where a query reads a single value.
fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(column)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_processes_may_create_the_same_sqlite_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        // The race is lost about one time in five; ten new files make a miss unlikely.
        for i in 0..10 {
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{i}.db")).display()
            );
            let (a, b) = tokio::join!(Store::open(&url), Store::open(&url));
            a.unwrap();
            b.unwrap();
        }
    }

    /// A test inside a step has a flake record of its own, beside its step's: one flaky test
    /// must not stand for the step's other tests, nor the step for them.
    #[tokio::test]
    async fn recent_results_name_each_test_inside_its_step() {
        use crate::decision::Role;
        use crate::sequence::results::{SubResult, SubStatus};
        use crate::sequence::StepStatus;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let branch = store
            .upsert_branch(BranchKey {
                name: "b",
                repository: "r.git",
                staging: "staging",
                target: "master",
            })
            .await
            .unwrap();
        let sha = "1".repeat(40);
        let flight = store
            .create_flight(branch, &"0".repeat(40), &sha, &[], 0, |_| Vec::new())
            .await
            .unwrap();
        let run = store
            .create_run(&NewRun {
                owner: RunOwner::Flight(flight.id),
                index: 1,
                sha: &sha,
                role: Role::Tip,
                attempt: 1,
                sequence: "smoke",
                host: "local",
            })
            .await
            .unwrap();
        let step = store
            .start_step(run, 0, "unit", &dir.path().join("log"))
            .await
            .unwrap();
        let test = |name: &str, status| SubResult {
            name: name.into(),
            status,
            duration: None,
            message: None,
        };
        store
            .add_sub_results(
                step,
                &[
                    test("a", SubStatus::Pass),
                    test("b", SubStatus::Error),
                    test("c", SubStatus::Skip),
                ],
            )
            .await
            .unwrap();
        store
            .finish_step(step, StepStatus::Fail, Some(1))
            .await
            .unwrap();
        let later = store
            .create_flight(branch, &sha, &"2".repeat(40), &[], 0, |_| Vec::new())
            .await
            .unwrap();
        let mut recent = store
            .recent_step_results(branch, later.id, 10)
            .await
            .unwrap();
        recent.sort_by(|a, b| a.1.cmp(&b.1));
        let names: Vec<(&str, StepStatus)> =
            recent.iter().map(|(_, n, s)| (n.as_str(), *s)).collect();
        assert_eq!(
            names,
            vec![
                ("smoke/unit", StepStatus::Fail),
                ("smoke/unit::a", StepStatus::Pass),
                ("smoke/unit::b", StepStatus::Fail),
            ]
        );
        // Nothing of a flight is its own history.
        assert!(store
            .recent_step_results(branch, flight.id, 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[test]
    fn urls() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x"),
            "postgres://…@db:5432/x"
        );
        assert_eq!(redact("sqlite:///a/b.db"), "sqlite:///a/b.db");
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/pg/p.db?mode=rwc"),
            Some(std::path::Path::new("/var/lib/pg"))
        );
    }
}
