//! pushgate: a push gate for commit and patch streams.
//!
//! Contributors push to a staging branch (or mail a series to a list); pushgate tests what
//! arrived on the hosts of a lab, fast-forwards the target branch to the last commit that
//! passed, and when something broke, finds the commit and tells the people concerned.
//!
//! The modules follow the data flow, over the store (`docs/design.md` has the map and the life
//! of a flight):
//!
//! - what the operator writes: [`config`] (service, policies), [`sequence`] (what to run);
//! - where work comes in: [`intake`] (GitHub webhooks, mailing lists);
//! - what is decided, purely: [`decision`] (verdicts) and [`culprit`] (the finder);
//! - who decides it: [`gate`] (staging flights), [`series`] (mailed series), [`jobs`];
//! - where it runs: [`run`] (one run end to end) on [`hosts`] (lab, leases, provisioners);
//! - what is done about it: [`repo`] (git: mirror, apply, push), [`forge`] (GitHub reports),
//!   [`notify`] (mail);
//! - underneath: [`store`] (all SQL); around it: [`service`] (wiring, loops), [`web`];
//! - on its own: [`bisect`], the `pushgate bisect` command's search over a local repository.
//!
//! The binary (`src/main.rs`, `src/cli/`) only reads the command line and calls these.

pub mod bisect;
pub mod config;
pub mod culprit;
pub mod decision;
pub mod digest;
pub mod file_error;
pub mod file_lock;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod forge;
pub mod fuzzing;
pub mod gate;
pub mod hosts;
pub mod intake;
pub mod jobs;
pub mod notify;
pub mod repo;
pub mod run;
pub mod sequence;
pub mod series;
pub mod service;
pub mod store;
pub mod templates;
pub mod web;
