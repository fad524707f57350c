//! `pushgate bench ...`: measurements that are compared side by side in one run, never asserted
//! as timings in tests.

pub mod culprit;
pub mod intake;
pub mod mail;
pub mod overhead;
pub mod schedule;
pub mod ssh;

pub use mail::{mail, MailReport};
pub use overhead::{overhead, BenchError, OverheadReport, Stats, BOUND_MS};
pub use schedule::{schedule, ScheduleReport};
pub use ssh::{ssh, SshReport};
