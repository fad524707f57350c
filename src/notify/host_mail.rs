//! The mail to the lab's admin when the lab takes a host out of service, and the watcher that
//! queues it when the lab says so.

use async_trait::async_trait;

use super::envelope::{compose_notice, Notice};
use super::ReportError;
use crate::hosts::HealthWatch;
use crate::store::{HealthRow, NewMail, Store, StoreError};
use crate::templates::render;

/// Composes the out-of-service mail to `admin`; `None` when that is no address.
pub fn compose_out_of_service(
    from: &str,
    admin: &str,
    health: &HealthRow,
) -> Result<Option<NewMail>, ReportError> {
    compose_notice(&Notice {
        from,
        to: std::slice::from_ref(&admin.to_string()),
        subject: format!("[pushgate] host {} taken out of service", health.host),
        body: render(
            "host-out-of-service.txt",
            minijinja::context! { host => &health.host, reason => &health.reason },
        )?,
        kind: "host",
        key: format!("{}.{}", health.host, health.updated_at),
    })
}

/// Queues the out-of-service mail in the store's outbox when the lab takes a host out.
pub struct HostMail {
    pub store: Store,
    /// pushgate's own address.
    pub from: String,
}

#[async_trait]
impl HealthWatch for HostMail {
    async fn out_of_service(
        &self,
        health: &HealthRow,
        admin: Option<&str>,
    ) -> Result<(), StoreError> {
        let Some(admin) = admin else { return Ok(()) };
        match compose_out_of_service(&self.from, admin, health) {
            Ok(Some(mail)) => self.store.enqueue_mail(None, &mail).await?,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot write the out-of-service mail"),
        }
        Ok(())
    }
}
