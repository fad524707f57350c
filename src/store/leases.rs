//! Leases on hosts and the hosts' health. A lease row per slot, keyed by `(host, slot)`: the
//! database refuses a second holder, so two schedulers (threads, processes or replicas) can
//! race for a slot and only one wins.

use super::{now_ms, read, Result, Store};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct LeaseRow {
    pub host: String,
    pub slot: i64,
    /// `run` or `borrow`.
    pub kind: String,
    /// `run 12`, or who borrowed it.
    pub holder: String,
    pub run_id: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct HealthRow {
    pub host: String,
    pub broken_streak: i64,
    /// `in-service` or `out-of-service`.
    pub state: String,
    pub reason: String,
    pub updated_at: i64,
}

/// Why a borrow was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowRefusal {
    RunningRun(Option<i64>),
    BorrowedBy(String),
}

impl Store {
    /// Takes a free (or expired) slot for a run. Returns false when someone holds it.
    pub async fn take_run_lease(
        &self,
        host: &str,
        slot: u32,
        run_id: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let taken = self
            .take_run_leases(&[(host.to_string(), slot, run_id)], expires_at)
            .await?;
        Ok(taken[0])
    }

    /// Takes several slots at once, one transaction for a whole scheduling round: which of
    /// `(host, slot, run)` were taken (false: someone else holds that slot).
    pub async fn take_run_leases(
        &self,
        wanted: &[(String, u32, i64)],
        expires_at: i64,
    ) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut taken = Vec::with_capacity(wanted.len());
        let mut tx = self.pool.begin().await?;
        for (host, slot, run_id) in wanted {
            sqlx::query("DELETE FROM leases WHERE host = $1 AND slot = $2 AND expires_at <= $3")
                .bind(host)
                .bind(i64::from(*slot))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO leases (host, slot, kind, holder, run_id, expires_at, created_at)
                 VALUES ($1, $2, 'run', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(host)
            .bind(i64::from(*slot))
            .bind(format!("run {run_id}"))
            .bind(run_id)
            .bind(expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            taken.push(inserted == 1);
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// Pushes a run's lease expiry on; false when the lease is gone (expired and taken).
    pub async fn renew_run_lease(
        &self,
        host: &str,
        slot: u32,
        run_id: i64,
        expires_at: i64,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE leases SET expires_at = $1 WHERE host = $2 AND slot = $3 AND run_id = $4
             AND kind = 'run'",
        )
        .bind(expires_at)
        .bind(host)
        .bind(i64::from(slot))
        .bind(run_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn drop_run_lease(&self, host: &str, slot: u32, run_id: i64) -> Result<()> {
        sqlx::query(
            "DELETE FROM leases WHERE host = $1 AND slot = $2 AND run_id = $3 AND kind = 'run'",
        )
        .bind(host)
        .bind(i64::from(slot))
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets every run's lease: at start, when no run of this store can be alive.
    pub async fn drop_all_run_leases(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM leases WHERE kind = 'run'")
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Leases that have not expired.
    pub async fn live_leases(&self) -> Result<Vec<LeaseRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM leases WHERE expires_at > $1 ORDER BY host, slot")
                .bind(now_ms())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Lends every slot of `host` to `who` until `expires_at`, or extends their borrow.
    pub async fn borrow_host(
        &self,
        host: &str,
        slots: u32,
        who: &str,
        expires_at: i64,
    ) -> Result<Result<(), BorrowRefusal>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM leases WHERE host = $1 AND expires_at <= $2")
            .bind(host)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let held: Vec<LeaseRow> = sqlx::query("SELECT * FROM leases WHERE host = $1")
            .bind(host)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(read)
            .collect::<Result<_>>()?;
        if let Some(run) = held.iter().find(|l| l.kind == "run") {
            return Ok(Err(BorrowRefusal::RunningRun(run.run_id)));
        }
        if let Some(other) = held.iter().find(|l| l.holder != who) {
            return Ok(Err(BorrowRefusal::BorrowedBy(other.holder.clone())));
        }
        if !held.is_empty() {
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE host = $2 AND holder = $3")
                .bind(expires_at)
                .bind(host)
                .bind(who)
                .execute(&mut *tx)
                .await?;
        } else {
            for slot in 0..slots {
                let inserted = sqlx::query(
                    "INSERT INTO leases (host, slot, kind, holder, run_id, expires_at, created_at)
                     VALUES ($1, $2, 'borrow', $3, NULL, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(host)
                .bind(i64::from(slot))
                .bind(who)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    // A run took a slot since we looked: the transaction is dropped unapplied.
                    return Ok(Err(BorrowRefusal::RunningRun(None)));
                }
            }
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Ends `who`'s borrow of `host`; returns how many slots came back.
    pub async fn return_host(&self, host: &str, who: Option<&str>) -> Result<u64> {
        let done = match who {
            Some(who) => {
                sqlx::query(
                    "DELETE FROM leases WHERE host = $1 AND kind = 'borrow' AND holder = $2",
                )
                .bind(host)
                .bind(who)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM leases WHERE host = $1 AND kind = 'borrow'")
                    .bind(host)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    /// Counts a run's ending against its host: a `broken` run adds to the streak, anything
    /// else clears it. Returns the health row, which says whether the host is now out of
    /// service and whether this call put it there.
    pub async fn record_host_outcome(
        &self,
        host: &str,
        broken: Option<&str>,
        max_broken: u32,
    ) -> Result<(HealthRow, bool)> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Write first: SQLite then holds the write lock for the whole read-modify-write.
        sqlx::query(
            "INSERT INTO host_health (host, broken_streak, state, reason, updated_at)
             VALUES ($1, 0, 'in-service', '', $2) ON CONFLICT DO NOTHING",
        )
        .bind(host)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let old = sqlx::query("SELECT * FROM host_health WHERE host = $1")
            .bind(host)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(read::<HealthRow>)
            .transpose()?;
        let was_out = old.as_ref().is_some_and(|h| h.state == "out-of-service");
        let streak = match broken {
            Some(_) => old.as_ref().map_or(0, |h| h.broken_streak) + 1,
            None => 0,
        };
        let goes_out = !was_out && streak >= i64::from(max_broken);
        let (state, reason) = if goes_out {
            (
                "out-of-service".to_string(),
                format!(
                    "{streak} runs in a row were broken; the last: {}",
                    broken.unwrap_or_default()
                ),
            )
        } else {
            match old {
                Some(h) if was_out => (h.state, h.reason),
                _ => ("in-service".to_string(), String::new()),
            }
        };
        sqlx::query(
            "UPDATE host_health SET broken_streak = $1, state = $2, reason = $3, updated_at = $4
             WHERE host = $5",
        )
        .bind(streak)
        .bind(&state)
        .bind(&reason)
        .bind(now)
        .bind(host)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            HealthRow {
                host: host.to_string(),
                broken_streak: streak,
                state,
                reason,
                updated_at: now,
            },
            goes_out,
        ))
    }

    /// Puts a host back in service (after someone fixed it).
    pub async fn set_host_in_service(&self, host: &str) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE host_health SET state = 'in-service', broken_streak = 0, reason = '',
             updated_at = $1 WHERE host = $2 AND state = 'out-of-service'",
        )
        .bind(now_ms())
        .bind(host)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn host_health(&self) -> Result<Vec<HealthRow>> {
        Ok(sqlx::query_as("SELECT * FROM host_health ORDER BY host")
            .fetch_all(&self.pool)
            .await?)
    }
}
