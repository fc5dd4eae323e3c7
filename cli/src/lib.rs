//! The operator's tool: `check` (the deployment's secret and mapping against the live
//! account) and `preview` (what the webhook function would do with an event). Exit codes:
//! 0 all well, 1 problems found, 2 the command could not run (a file, the secret, the network).

use std::io::Write;
use std::process::ExitCode;

use ac_webhook_sync::check::{self, Problem, Severity};
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secret::{AppSecret, SecretFile, SecretSource};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "ac-webhook-sync",
    version,
    about = "Operate an ac-webhook-sync deployment."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the secret and the mapping against the ActiveCampaign account: the key, every
    /// list, custom field and personalization tag the mapping uses, each route's secrets;
    /// then print what to paste into each sender.
    Check(CheckArgs),
    /// What the webhook function would do with a Function URL event (no network).
    Preview(PreviewArgs),
    /// List the dead-letter queue (reason, route, masked email, age), or move messages back
    /// to the contact queue with `--redrive` once their cause is fixed.
    DeadLetters(DeadLetterArgs),
    /// Import a CSV, NDJSON or JSON file of any size through the Bulk Contact Importer, mapped
    /// by a route as the batch route maps a posted row; resumable.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: `.csv` (a header row), `.ndjson`/`.jsonl`, or `.json` (an array).
    pub file: String,
    /// The route whose mapping the rows take (a `batch` route such as `import`).
    #[arg(long, default_value = "import")]
    pub route: String,
    /// Where the run keeps how far it got (default: FILE.import-state.json beside it).
    #[arg(long)]
    pub state: Option<String>,
    /// The file's format when its extension does not say.
    #[arg(long, value_parser = ["csv", "ndjson", "json"])]
    pub format: Option<String>,
    /// Map and plan every row, print the plan and a summary; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send again the rows a stopped run left with an unknown outcome (they may be imported
    /// twice; an import is an upsert).
    #[arg(long)]
    pub resend_unknown: bool,
    /// One JSON document (the summary) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub deployment: Deployment,
}

#[derive(Debug, Args)]
pub struct DeadLetterArgs {
    /// The dead-letter queue (the stack's `DeadLetterQueueUrl` output).
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    pub queue_url: String,
    /// Move messages back to the contact queue (all, or those given with `--id`).
    #[arg(long)]
    pub redrive: bool,
    /// The contact queue a redrive sends to (the stack's `ContactQueueUrl` output).
    #[arg(long, env = "CONTACT_QUEUE_URL", required_if_eq("redrive", "true"))]
    pub to: Option<String>,
    /// Only these messages (repeat the flag).
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// List at most this many.
    #[arg(long, default_value_t = 1000)]
    pub max: usize,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the deployment's secret and mapping are.
#[derive(Debug, Args)]
pub struct Deployment {
    /// The secret's JSON file (local runs).
    #[arg(
        long,
        default_value = "local/secret.json",
        conflicts_with = "secret_id"
    )]
    pub secret_file: String,
    /// The secret in AWS Secrets Manager (its name or ARN), read with the environment's
    /// AWS credentials.
    #[arg(long)]
    pub secret_id: Option<String>,
    /// The mapping file (the bundled `mapping.toml` when absent).
    #[arg(long, env = "MAPPING_FILE")]
    pub mapping: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub deployment: Deployment,
    /// The Function URL (the stack's `WebhookUrl` output), for each route's URL.
    #[arg(long, env = "FUNCTION_URL")]
    pub url: Option<String>,
    /// Print the secrets themselves in the routes' set-up (they are otherwise named).
    #[arg(long)]
    pub reveal: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The Function URL event (as in `events/`).
    pub event: String,
    /// A saved answer of the sender's API, for a sender whose webhooks carry only ids.
    #[arg(long)]
    pub lookup: Option<String>,
    #[command(flatten)]
    pub deployment: Deployment,
}

/// Runs `cli`, writing its report to `out`.
pub async fn run(cli: Cli, out: &mut impl Write) -> ExitCode {
    let result = match cli.command {
        Command::Check(args) => check(&args, out).await,
        Command::Preview(args) => preview(&args, out).await,
        Command::DeadLetters(args) => dead_letters(&args, out).await,
        Command::Import(args) => import(&args, out).await,
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `value` as pretty JSON, one document.
fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn mapping_of(deployment: &Deployment) -> Result<Mapping, String> {
    match &deployment.mapping {
        Some(path) => Mapping::from_toml(&read(path)?),
        None => Mapping::bundled(),
    }
    .map_err(|e| format!("mapping: {e}"))
}

/// Where the secret is read from, and what to call it in a message.
fn secret_source(deployment: &Deployment) -> (Box<dyn SecretSource>, String) {
    match &deployment.secret_id {
        Some(id) => (
            Box::new(ac_webhook_sync::aws::secrets_manager::SecretsManager::new(
                ac_webhook_sync::aws::LazyClient::from_environment(),
                id.clone(),
            )),
            format!("secret {id}"),
        ),
        None => (
            Box::new(SecretFile(deployment.secret_file.clone().into())),
            deployment.secret_file.clone(),
        ),
    }
}

async fn secret_of(deployment: &Deployment) -> Result<AppSecret, String> {
    let (source, name) = secret_source(deployment);
    source.fetch().await.map_err(|e| format!("{name}: {e}"))
}

/// A source that is a boxed one (for the secret cache).
struct Boxed(Box<dyn SecretSource>);

#[async_trait::async_trait]
impl SecretSource for Boxed {
    async fn fetch(&self) -> Result<AppSecret, ac_webhook_sync::secret::SecretError> {
        self.0.fetch().await
    }
}

async fn check(args: &CheckArgs, out: &mut impl Write) -> Result<ExitCode, String> {
    let mapping = mapping_of(&args.deployment)?;
    let secret = secret_of(&args.deployment).await?;
    let mut problems = check::compare_with_secret(&mapping, &secret);
    let account = match check::read_account(&secret).await {
        Ok(account) => {
            problems.extend(check::compare_with_account(&mapping, &secret, &account));
            Some(account)
        }
        Err(check::AccountError::BadKey(status)) => {
            problems.insert(
                0,
                Problem {
                    severity: Severity::Error,
                    route: None,
                    key: "api_key".into(),
                    message: check::AccountError::BadKey(status).to_string(),
                },
            );
            None
        }
        Err(other) => return Err(other.to_string()),
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| "https://YOUR-FUNCTION-URL".into());
    let setups = check::route_setups(&mapping, &secret, &url, args.reveal);
    let failed = problems.iter().any(|p| p.severity == Severity::Error);
    let written = if args.json {
        let report = json!({
            "ok": !failed,
            "account": account.as_ref().map(|a| json!({
                "api_url": secret.api_url, "user": a.user,
                "lists": a.lists.len(), "fields": a.fields.len(), "requests": a.requests,
            })),
            "problems": problems,
            "routes": setups,
        });
        write_json(out, &report)
    } else {
        write_check_text(out, &secret, account.as_ref(), &problems, &setups)
    };
    written.map_err(|e| e.to_string())?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_check_text(
    out: &mut impl Write,
    secret: &AppSecret,
    account: Option<&check::AccountItems>,
    problems: &[Problem],
    setups: &[check::RouteSetup],
) -> std::io::Result<()> {
    match account {
        Some(a) => writeln!(
            out,
            "account  {} (key of {}): {} lists, {} custom fields, read in {} requests",
            secret.api_url,
            a.user,
            a.lists.len(),
            a.fields.len(),
            a.requests
        )?,
        None => writeln!(out, "account  {}: not read", secret.api_url)?,
    }
    writeln!(out)?;
    if problems.is_empty() {
        writeln!(out, "problems none")?;
    } else {
        writeln!(out, "problems")?;
        for p in problems {
            let level = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let route = p.route.as_deref().unwrap_or("(secret)");
            writeln!(out, "  {level:<8} {route:<16} {:<34} {}", p.key, p.message)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "routes   (what to paste into each sender)")?;
    for s in setups {
        writeln!(out, "  {:<16} {:<16} {}", s.route, s.sender, s.url)?;
        if s.secret != "(in the URL)" {
            writeln!(out, "  {:<16} {:<16} secret {}", "", "", s.secret)?;
        }
    }
    Ok(())
}

async fn preview(args: &PreviewArgs, out: &mut impl Write) -> Result<ExitCode, String> {
    let mapping = mapping_of(&args.deployment)?;
    let secret = secret_of(&args.deployment).await?;
    let request = ac_webhook_sync::aws::lambda::http::from_json(&read(&args.event)?)
        .map_err(|e| format!("{}: {e}", args.event))?;
    let found = match &args.lookup {
        Some(path) => {
            Some(serde_json::from_str(&read(path)?).map_err(|e| format!("{path}: not JSON: {e}"))?)
        }
        None => None,
    };
    let report = ac_webhook_sync::preview::preview_found(&mapping, &secret, &request, found);
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = writeln!(out, "{text}");
    Ok(ExitCode::SUCCESS)
}

async fn dead_letters(args: &DeadLetterArgs, out: &mut impl Write) -> Result<ExitCode, String> {
    use ac_webhook_sync::aws::dead_letters;
    let client = dead_letters::client_from_environment().await;
    if args.redrive {
        let to = args
            .to
            .as_deref()
            .ok_or("--redrive needs --to (or CONTACT_QUEUE_URL)")?;
        let only = (!args.ids.is_empty()).then_some(args.ids.as_slice());
        let done = dead_letters::redrive(&client, &args.queue_url, to, only)
            .await
            .map_err(|e| e.to_string())?;
        let written = if args.json {
            write_json(out, &done)
        } else {
            let mut text = format!("moved {} message(s) back to {to}", done.moved.len());
            if !done.not_found.is_empty() {
                text.push_str(&format!(
                    "; not in the dead-letter queue: {}",
                    done.not_found.join(", ")
                ));
            }
            writeln!(out, "{text}")
        };
        written.map_err(|e| e.to_string())?;
        return Ok(if done.not_found.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let letters = dead_letters::list(&client, &args.queue_url, args.max)
        .await
        .map_err(|e| e.to_string())?;
    let written = if args.json {
        write_json(out, &letters)
    } else if letters.is_empty() {
        writeln!(out, "the dead-letter queue is empty")
    } else {
        let mut text = format!("{} dead letter(s), oldest first\n", letters.len());
        for l in &letters {
            text.push_str(&format!(
                "  {}  {:>7}  {:<14} {:<28} {}\n",
                l.message_id,
                age(l.age_secs),
                l.route.as_deref().unwrap_or("?"),
                l.contact,
                l.reason
            ));
        }
        text.push_str("redrive with: ac-webhook-sync dead-letters --redrive [--id ID ...]");
        writeln!(out, "{text}")
    };
    written.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `42 s`, `17 min`, `5 h`, `3 d`.
fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

async fn import(args: &ImportArgs, out: &mut impl Write) -> Result<ExitCode, String> {
    use ac_webhook_sync::backfill::{Backfill, FileFormat};
    use std::io::IsTerminal;
    let mapping = mapping_of(&args.deployment)?;
    let route = mapping
        .route(&args.route)
        .ok_or_else(|| format!("the mapping has no route {}", args.route))?;
    let file = std::path::PathBuf::from(&args.file);
    let format = match args.format.as_deref() {
        Some("csv") => FileFormat::Csv,
        Some("ndjson") => FileFormat::Ndjson,
        Some("json") => FileFormat::Json,
        _ => FileFormat::of(&file).ok_or("name the file's format with --format csv|ndjson|json")?,
    };
    let state_file = args
        .state
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(format!("{}.import-state.json", args.file)));
    let backfill = Backfill {
        file,
        format,
        route,
        state_file: state_file.clone(),
        resend_unknown: args.resend_unknown,
    };
    let started = std::time::Instant::now();
    let bar = if std::io::stderr().is_terminal() && !args.json {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {percent:>3}%  {msg}  {elapsed} elapsed, about {eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut last_line = std::time::Instant::now();
    let mut progress = |p: &ac_webhook_sync::backfill::Progress| {
        let rate = p.rows_this_run as f64 / started.elapsed().as_secs_f64().max(0.001) * 60.0;
        let text = format!(
            "rows {} read, {} imported, {} synced one by one, {} rejected, {} skipped, {:.0} rows/min",
            p.rows_read, p.imported, p.synced, p.rejected, p.skipped, rate
        );
        match &bar {
            Some(bar) => {
                bar.set_length(p.file_bytes);
                bar.set_position(p.bytes_read);
                bar.set_message(text);
            }
            // Not a terminal: a plain line every 2 s, readable in a log.
            None if last_line.elapsed() >= std::time::Duration::from_secs(2) => {
                last_line = std::time::Instant::now();
                let done = 100 * p.bytes_read / p.file_bytes.max(1);
                eprintln!("{done:>3}% {text}");
            }
            None => {}
        }
    };
    let mut plans = Vec::new();
    let result = if args.dry_run {
        backfill
            .run(None, &mut progress, |plan| {
                plans.push((
                    plan.imports.len(),
                    plan.imports.iter().map(Vec::len).sum::<usize>(),
                    plan.one_by_one.len(),
                ));
            })
            .await
    } else {
        let (source, name) = secret_source(&args.deployment);
        let secrets = std::sync::Arc::new(ac_webhook_sync::secret::SecretCache::new(
            Boxed(source),
            std::time::Duration::from_secs(300),
        ));
        let secret = secrets.get().await.map_err(|e| format!("{name}: {e}"))?;
        let client = ac_webhook_sync::activecampaign::ActiveCampaignClient::new(
            ac_webhook_sync::activecampaign::ClientSettings::default(),
        )
        .map_err(|e| e.to_string())?;
        let delivery = ac_webhook_sync::delivery::InlineDelivery::new(client, secrets);
        backfill
            .run(Some((&delivery, secret)), &mut progress, |_| {})
            .await
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let state = result.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if args.json {
        let mut summary = serde_json::to_value(&state).unwrap_or_default();
        summary["elapsed_secs"] = json!(elapsed.as_secs_f64());
        summary["dry_run"] = json!(args.dry_run);
        write_json(out, &summary).map_err(|e| e.to_string())?;
    } else {
        let mut text = String::new();
        if args.dry_run {
            let imports: usize = plans.iter().map(|p| p.0).sum();
            let in_imports: usize = plans.iter().map(|p| p.1).sum();
            let one_by_one: usize = plans.iter().map(|p| p.2).sum();
            text.push_str(&format!(
                "dry run: nothing sent. {imports} imports would carry {in_imports} contacts; {one_by_one} would go through contact_sync\n"
            ));
        }
        text.push_str(&format!(
            "rows       {}\nimported   {}\nsynced     {} (one by one)\nskipped    {} (no email)\nrejected   {}\n",
            state.rows_read, state.imported, state.synced, state.skipped, state.rejected.len()
        ));
        for r in state.rejected.iter().take(20) {
            text.push_str(&format!("  row {:>7}  {}\n", r.row, r.reason));
        }
        if state.rejected.len() > 20 {
            text.push_str(&format!(
                "  and {} more (--json lists all)\n",
                state.rejected.len() - 20
            ));
        }
        if !state.unknown.is_empty() {
            let rows: Vec<String> = state
                .unknown
                .iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect();
            text.push_str(&format!(
                "unknown    rows {} (a stopped run did not learn their outcome; --resend-unknown sends them)\n",
                rows.join(", ")
            ));
        }
        let ids: Vec<&str> = state
            .windows
            .iter()
            .flat_map(|w| w.batch_ids.iter().map(String::as_str))
            .collect();
        text.push_str(&format!(
            "imports    {} ({})\n",
            ids.len(),
            ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                + if ids.len() > 5 { ", …" } else { "" }
        ));
        text.push_str(&format!(
            "time       {:.1} s; state in {}\n",
            elapsed.as_secs_f64(),
            state_file.display()
        ));
        write!(out, "{text}").map_err(|e| e.to_string())?;
    }
    Ok(if state.rejected.is_empty() && state.unknown.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
