//! Policy branches and what the page says about each.

use super::{get, now_ms, Result, Store};

/// One policy's staging branch.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct BranchRow {
    pub id: i64,
    pub policy: String,
    pub repository: String,
    pub staging: String,
    pub target: String,
    pub staging_head: Option<String>,
    pub target_head: Option<String>,
    /// `idle`, `testing`, `blocked` or `error`.
    pub state: String,
    /// The last decision and why, or what is wrong.
    pub message: String,
    pub updated_at: i64,
    /// A maintainer's hold (`pushgate jobs block`): why nothing is planned or pushed.
    pub hold: Option<String>,
}

/// What the store keeps of a policy's branch: its name and where it points. A policy gives
/// it (`From<&Policy>`), so the store needs nothing of how policies are written.
#[derive(Clone, Copy, Debug)]
pub struct BranchKey<'a> {
    /// The policy's name.
    pub name: &'a str,
    pub repository: &'a str,
    pub staging: &'a str,
    pub target: &'a str,
}

impl Store {
    /// Registers a policy's branch (or updates what the policy says of it); returns its id.
    pub async fn upsert_branch<'a>(&self, branch: impl Into<BranchKey<'a>>) -> Result<i64> {
        let policy: BranchKey<'a> = branch.into();
        let existing = sqlx::query("SELECT id FROM branches WHERE policy = $1")
            .bind(policy.name)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = existing {
            let id: i64 = get(&row, "id")?;
            sqlx::query(
                "UPDATE branches SET repository = $1, staging = $2, target = $3 WHERE id = $4",
            )
            .bind(policy.repository)
            .bind(policy.staging)
            .bind(policy.target)
            .bind(id)
            .execute(&self.pool)
            .await?;
            return Ok(id);
        }
        let row = sqlx::query(
            "INSERT INTO branches (policy, repository, staging, target, state, message, updated_at)
             VALUES ($1, $2, $3, $4, 'idle', 'not looked at yet', $5) RETURNING id",
        )
        .bind(policy.name)
        .bind(policy.repository)
        .bind(policy.staging)
        .bind(policy.target)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    /// Says what the branch is doing and why, as the page shows it.
    pub async fn set_branch_status(&self, id: i64, state: &str, message: &str) -> Result<()> {
        sqlx::query("UPDATE branches SET state = $1, message = $2, updated_at = $3 WHERE id = $4")
            .bind(state)
            .bind(message)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records where staging and the target were last seen.
    pub async fn set_branch_heads(&self, id: i64, staging: &str, target: &str) -> Result<()> {
        sqlx::query(
            "UPDATE branches SET staging_head = $1, target_head = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(staging)
        .bind(target)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn branches(&self) -> Result<Vec<BranchRow>> {
        Ok(sqlx::query_as("SELECT * FROM branches ORDER BY policy")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn branch(&self, id: i64) -> Result<Option<BranchRow>> {
        self.by_id("branches", id).await
    }
}
