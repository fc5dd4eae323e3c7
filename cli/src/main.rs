//! `ac-webhook-sync`: the operator's tool (see `lib.rs`).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = ac_webhook_sync_cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    ac_webhook_sync_cli::run(cli, &mut out).await
}
