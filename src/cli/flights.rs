//! `pushgate flights [POLICY]`: the newest flights, what each tested and what it decided.
//! Reads the store; needs no running `serve`.

use anyhow::{bail, Result};

use pushgate::repo::short;

use super::table::{when, Table};

#[derive(clap::Args)]
pub struct Args {
    /// Only this policy's flights [default: every policy's].
    policy: Option<String>,
    /// How many flights per policy.
    #[arg(long, default_value_t = 10)]
    limit: i64,
    #[command(flatten)]
    config: super::ConfigArg,
}

pub async fn run(args: Args) -> Result<()> {
    let Some(store) = super::open_store_to_read(&args.config).await? else {
        return Ok(());
    };
    let branches = store.branches().await?;
    if let Some(name) = &args.policy {
        if !branches.iter().any(|b| &b.policy == name) {
            let known: Vec<&str> = branches.iter().map(|b| b.policy.as_str()).collect();
            bail!(
                "no policy `{name}` in the store (known: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    let mut table = Table::new(&[
        "FLIGHT", "POLICY", "STATE", "VERDICT", "RANGE", "COMMITS", "CULPRIT", "PUSHED", "STARTED",
    ]);
    for b in branches
        .iter()
        .filter(|b| args.policy.as_ref().is_none_or(|p| p == &b.policy))
    {
        for f in store.recent_flights(b.id, args.limit.max(1)).await? {
            table.row(vec![
                f.id.to_string(),
                b.policy.clone(),
                f.state.as_str().to_string(),
                f.verdict.map_or("-".to_string(), |v| v.to_string()),
                format!("{}..{}", short(&f.base), short(&f.tip)),
                f.commits.len().to_string(),
                f.culprit
                    .as_deref()
                    .map_or("-".to_string(), |c| short(c).to_string()),
                f.pushed_to
                    .as_deref()
                    .map_or("-".to_string(), |c| short(c).to_string()),
                when(f.created_at),
            ]);
        }
    }
    table.print("no flights yet");
    Ok(())
}
