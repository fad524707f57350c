//! The forge a policy's repository lives on (GitHub): what pushgate asks of it and tells it.
//! The gate and the web side speak to the [`Forge`] trait; [`GitHub`] implements it over
//! the REST API, and tests point that at a local double. Reports wait in the store until
//! [`deliver_due_reports`] has them taken.

mod delivery;
mod github;
pub mod reports;

use async_trait::async_trait;
use std::time::Duration;

use crate::repo::Credentials;
use crate::store::ReportRow;

pub use delivery::{deliver_due_reports, ReportDelivery};
pub use github::GitHub;
pub use reports::{Outcome, ReportTarget};

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Worth trying again: a 5xx, a rate limit, a dropped connection. `after` is when the
    /// forge said to come back, if it did.
    #[error("{message}")]
    Transient {
        message: String,
        after: Option<Duration>,
    },
    /// The forge said no for good (a 4xx other than a rate limit): trying again changes
    /// nothing.
    #[error("{message}")]
    Refused { message: String },
}

/// What pushgate needs from a forge.
#[async_trait]
pub trait Forge: Send + Sync {
    /// Where `branch` of `repository` (`owner/name`) points now; `None` when it does not exist.
    async fn branch_head(
        &self,
        repository: &str,
        branch: &str,
    ) -> Result<Option<String>, ForgeError>;

    /// Posts a status, a check run or a comment. `update` is the check run to update instead of
    /// making a new one. Returns the id of what was made, when the forge gives one.
    async fn post(
        &self,
        report: &ReportRow,
        update: Option<i64>,
    ) -> Result<Option<i64>, ForgeError>;

    /// What git should log in with to fetch from and push to `url`, one of the forge's
    /// repositories: a token over HTTPS, a deploy key over SSH.
    async fn git_credentials(&self, url: &str) -> Result<Credentials, ForgeError>;
}

/// How long the `attempts`-th retry waits: `base` doubling up to an hour, or what the forge
/// asked for when that is longer.
pub fn retry_delay(base: Duration, attempts: i64, asked: Option<Duration>) -> Duration {
    let shift = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    let ours = base
        .saturating_mul(1 << shift)
        .min(Duration::from_secs(3600));
    asked.map_or(ours, |a| a.max(ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_honour_the_forge() {
        let base = Duration::from_secs(10);
        assert_eq!(retry_delay(base, 0, None), base);
        assert_eq!(retry_delay(base, 3, None), Duration::from_secs(80));
        assert_eq!(retry_delay(base, 40, None), Duration::from_secs(3600));
        assert_eq!(
            retry_delay(base, 0, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_delay(base, 3, Some(Duration::from_secs(1))),
            Duration::from_secs(80)
        );
    }
}
