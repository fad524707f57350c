//! pushgate: a push gate for commit and patch streams.
//!
//! Contributors push to a staging branch; pushgate tests what arrived, fast-forwards the target
//! branch to the last commit that passed, and when something broke, finds the commit and mails
//! the people concerned. See `ARCHITECTURE.md` in the shared folder for the map.

pub mod bench;
pub mod bisect;
pub mod client;
pub mod config;
pub mod culprit;
pub mod demo;
pub mod forge;
pub mod gate;
pub mod github;
pub mod hosts;
pub mod jobs;
pub mod mail;
pub mod policy;
pub mod repo;
pub mod report;
pub mod runner;
pub mod sequence;
pub mod service;
pub mod source;
pub mod store;
pub mod web;
