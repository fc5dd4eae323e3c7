//! `ac-webhook-sync import` against the sandbox's Bulk Contact Importer at its real pace (100
//! requests a minute): a run killed part-way and run again imports every row once; a dry run
//! sends nothing; progress is plain lines when stderr is not a terminal.

use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use ac_sandbox::{Language, Sandbox};
use ac_webhook_sync_cli::{Cli, run};
use clap::Parser;
use serde_json::Value;

const KEY: &str = "local-dev-key";

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

struct Setup {
    dir: std::path::PathBuf,
    sandbox: Sandbox,
    url: String,
}

impl Setup {
    async fn new(rows: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ac-import-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let sandbox = Sandbox::new(KEY, Language::English).quiet();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(ac_sandbox::serve(listener, sandbox.clone()));
        let mut secret: Value =
            serde_json::from_str(&std::fs::read_to_string(repo("local/secret.json")).unwrap())
                .unwrap();
        secret["api_url"] = url.clone().into();
        std::fs::write(dir.join("secret.json"), secret.to_string()).unwrap();
        let mut csv = String::from("email,first name,last name\n");
        for i in 0..rows {
            csv.push_str(&format!("backfill{i}@example.com,Row,{i}\n"));
        }
        std::fs::write(dir.join("contacts.csv"), csv).unwrap();
        Self { dir, sandbox, url }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    fn args(&self) -> Vec<String> {
        [
            "import",
            &self.path("contacts.csv"),
            "--route",
            "import",
            "--secret-file",
            &self.path("secret.json"),
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// Contacts in each import the sandbox took, summed.
    async fn imported_contacts(&self) -> usize {
        let imports: Value = reqwest::get(format!("{}/sandbox/imports", self.url))
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        imports["imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["contacts"].as_u64().unwrap() as usize)
            .sum()
    }

    fn state(&self) -> Value {
        std::fs::read(self.path("contacts.csv.import-state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run_in_process(args: &[String]) -> (ExitCode, Value) {
    let mut all = vec!["ac-webhook-sync".to_string()];
    all.extend_from_slice(args);
    all.push("--json".into());
    let mut out = Vec::new();
    let code = run(Cli::parse_from(all), &mut out).await;
    (code, serde_json::from_slice(&out).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_part_way_continues_and_imports_every_row_once() {
    let rows = 3000;
    let setup = Setup::new(rows).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ac-webhook-sync"))
        .args(setup.args())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once a few windows are in.
    let started = std::time::Instant::now();
    while setup.state()["windows"].as_array().map_or(0, Vec::len) < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    let stderr = child.wait_with_output().unwrap().stderr;
    assert!(
        !stderr.contains(&0x1b),
        "progress without terminal escapes: {}",
        String::from_utf8_lossy(&stderr)
    );
    let before = setup.imported_contacts().await;
    assert!(before > 0 && before < rows, "killed part-way: {before}");

    let (code, summary) = run_in_process(&setup.args()).await;
    let unknown: usize = summary["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w[1].as_u64().unwrap() - w[0].as_u64().unwrap() + 1) as usize)
        .sum();
    let imported = setup.imported_contacts().await;
    // Nothing twice: the imports hold each row at most once, and every row is imported or
    // listed as unknown (the kill landed while ActiveCampaign answered for it).
    assert!(imported <= rows, "imported {imported} of {rows}");
    assert!(
        imported + unknown >= rows,
        "imported {imported}, unknown {unknown}"
    );
    if unknown == 0 {
        assert_eq!(code, ExitCode::SUCCESS, "{summary:#}");
        assert_eq!(imported, rows);
    } else {
        // The operator sends them: now every row is in.
        let mut again = setup.args();
        again.push("--resend-unknown".into());
        let (code, _) = run_in_process(&again).await;
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(setup.imported_contacts().await >= rows);
    }
    // A third run finds nothing left to do.
    let (_, last) = run_in_process(&setup.args()).await;
    assert_eq!(last["next_row"].as_u64().unwrap() as usize, rows + 2);
    let total = setup.imported_contacts().await;
    assert!(
        total <= rows + unknown,
        "no window sent twice without being asked: {total}"
    );
    let _ = &setup.sandbox;
}

#[tokio::test]
async fn a_dry_run_plans_every_row_and_sends_nothing() {
    let setup = Setup::new(600).await;
    let mut args = setup.args();
    args.push("--dry-run".into());
    let mut all = vec!["ac-webhook-sync".to_string()];
    all.extend(args);
    let mut out = Vec::new();
    let code = run(Cli::parse_from(all), &mut out).await;
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(
        text.contains("dry run: nothing sent. 3 imports would carry 600 contacts"),
        "{text}"
    );
    assert_eq!(setup.imported_contacts().await, 0);
    assert!(setup.state().is_null(), "a dry run keeps no state");
}

/// NDJSON and JSON files stream as CSV does; a row that cannot be read is rejected with its
/// number and the run goes on; a JSON file that is not an array of contacts is refused.
#[tokio::test]
async fn ndjson_and_json_rows_stream_and_an_unreadable_row_is_named() {
    let setup = Setup::new(1).await;
    let mut ndjson = String::new();
    for i in 0..30 {
        ndjson.push_str(&format!(
            "{{\"email\": \"nd{i}@example.com\", \"first_name\": \"N\"}}\n"
        ));
        if i == 9 {
            ndjson.push_str("{\"email\": \"broken@example.com\",\n");
            ndjson.push('\n');
        }
    }
    std::fs::write(setup.path("rows.ndjson"), &ndjson).unwrap();
    let json: Vec<String> = (0..30)
        .map(|i| format!("{{\"email\": \"js{i}@example.com\"}}"))
        .collect();
    std::fs::write(
        setup.path("rows.json"),
        format!("{{\"contacts\": [{}, 7]}}", json.join(",")),
    )
    .unwrap();
    std::fs::write(setup.path("not-contacts.json"), "{\"rows\": []}").unwrap();
    std::fs::write(
        setup.path("ndjson-named.json"),
        "{\"contacts\": []}\n{\"email\": \"a@example.com\"}\n",
    )
    .unwrap();
    let dry = |file: &str| {
        vec![
            "import".to_string(),
            setup.path(file),
            "--secret-file".into(),
            setup.path("secret.json"),
            "--dry-run".into(),
        ]
    };
    let (code, summary) = run_in_process(&dry("rows.ndjson")).await;
    assert_eq!(code, ExitCode::from(1), "{summary:#}");
    assert_eq!(summary["rows_read"], 31, "{summary:#}");
    assert_eq!(summary["rejected"][0]["row"], 11);
    assert!(
        summary["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable")
    );
    let (code, summary) = run_in_process(&dry("rows.json")).await;
    assert_eq!(code, ExitCode::from(1), "{summary:#}");
    assert_eq!(summary["rows_read"], 31);
    assert_eq!(summary["rejected"][0]["row"], 31, "the 7 is no object");
    for refused in ["not-contacts.json", "ndjson-named.json"] {
        let (code, _) = run_in_process(&dry(refused)).await;
        assert_eq!(code, ExitCode::from(2), "{refused}");
    }
    assert_eq!(setup.imported_contacts().await, 0);
}

/// ActiveCampaign refuses a window (the key revoked mid-run): the run stops with exit 2 and
/// that window is unknown, not sent again by itself; once the key is back, --resend-unknown
/// sends it and the rest.
#[tokio::test]
async fn a_window_activecampaign_refused_waits_for_resend_unknown() {
    let setup = Setup::new(1000).await;
    setup.sandbox.set_fault(Some(ac_sandbox::Fault {
        kind: ac_sandbox::FaultKind::WrongKey,
        status: None,
        delay_ms: None,
        retry_after: None,
        count: None,
    }));
    let (code, _) = run_in_process(&setup.args()).await;
    assert_eq!(code, ExitCode::from(2));
    assert_eq!(setup.state()["unknown"], serde_json::json!([[2, 251]]));
    setup.sandbox.set_fault(None);
    let (code, summary) = run_in_process(&setup.args()).await;
    assert_eq!(
        code,
        ExitCode::from(1),
        "rows 2-251 are still unknown: {summary:#}"
    );
    assert_eq!(setup.imported_contacts().await, 750);
    let mut again = setup.args();
    again.push("--resend-unknown".into());
    let (code, summary) = run_in_process(&again).await;
    assert_eq!(code, ExitCode::SUCCESS, "{summary:#}");
    assert_eq!(setup.imported_contacts().await, 1000);
    assert_eq!(summary["unknown"], serde_json::json!([]));
}
