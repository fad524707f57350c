//! The mail to the list when a maintainer forces a commit onto the target without the gate.

use super::envelope::{compose_notice, Notice};
use super::ReportError;
use crate::config::Policy;
use crate::store::{NewMail, OverrideRow};
use crate::templates::render;

/// Composes the list's mail about a `force`: who, what, why and what came of it; `None` when
/// the policy has no list.
pub fn compose_force(
    from: &str,
    policy: &Policy,
    force: &OverrideRow,
    outcome: &str,
    public_url: &str,
) -> Result<Option<NewMail>, ReportError> {
    let to: Vec<String> = policy.mail.list.iter().cloned().collect();
    compose_notice(&Notice {
        from,
        to: &to,
        subject: format!(
            "{} {} forced {}",
            policy.mail.subject_prefix, force.who, policy.target
        ),
        body: render(
            "force.txt",
            minijinja::context! {
                who => &force.who,
                what => force.rev.as_deref().unwrap_or("the staging tip"),
                target => &policy.target,
                repository => &policy.repository,
                why => &force.why,
                outcome,
                public_url,
            },
        )?,
        kind: "force",
        key: format!("override-{}", force.id),
    })
}
