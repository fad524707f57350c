//! `pushgate status`: each policy's branch as the store has it: state, heads, the flight
//! running now and the last decision. Reads the store; needs no running `serve`.

use anyhow::Result;

use pushgate::repo::short;
use pushgate::store::FlightState;

use super::table::Table;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigArg,
}

pub async fn run(args: Args) -> Result<()> {
    let Some(store) = super::open_store_to_read(&args.config).await? else {
        return Ok(());
    };
    let mut table = Table::new(&[
        "POLICY",
        "STATE",
        "STAGING",
        "TARGET",
        "RUNNING",
        "LAST DECISION",
    ]);
    for b in store.branches().await? {
        let running = store
            .recent_flights(b.id, 5)
            .await?
            .into_iter()
            .find(|f| f.state == FlightState::Running)
            .map_or("-".to_string(), |f| format!("flight {}", f.id));
        let state = match &b.hold {
            Some(why) => format!("{} (held: {why})", b.state),
            None => b.state.clone(),
        };
        let head = |h: &Option<String>| {
            h.as_deref()
                .map_or("-".to_string(), |s| short(s).to_string())
        };
        table.row(vec![
            b.policy.clone(),
            state,
            format!("{} {}", b.staging, head(&b.staging_head)),
            format!("{} {}", b.target, head(&b.target_head)),
            running,
            b.message.clone(),
        ]);
    }
    table.print("no branches yet: the gate has not run on this store");
    Ok(())
}
