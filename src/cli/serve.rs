//! `pushgate serve`: the gate loop for every policy, with the status page, the API and the
//! hook endpoints, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use pushgate::gate::LogProgress;
use pushgate::service::Service;

#[derive(clap::Args)]
pub struct Args {
    /// The service configuration (default: ./pushgate.toml if present, else defaults).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: Args) -> Result<()> {
    let config = super::load_config(args.config.as_deref())?;
    let service = Arc::new(Service::open(config, Arc::new(LogProgress)).await?);
    let listener = service.bind().await?;
    service.serve(listener, super::shutdown_signal()).await?;
    Ok(())
}
