//! `ac-webhook-sync check` against the sandbox (ActiveCampaign's v3 reads from its seed): a
//! deployment that is right passes; a missing list, field or personalization tag, a route
//! without its secret or sender credentials, and a refused key are each found and exit 1;
//! fields past the first pages are read.

use std::process::ExitCode;

use ac_sandbox::{Language, Sandbox, Seed, SeedField};
use ac_webhook_sync_cli::{Cli, run};
use clap::Parser;
use serde_json::Value;

const KEY: &str = "local-dev-key";

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A sandbox on a free port, and a secret file (the local one) pointing at it with `key`.
async fn account(
    sandbox: Sandbox,
    key: &str,
    edit: impl FnOnce(&mut Value),
) -> tempfile_path::Path {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ac_sandbox::serve(listener, sandbox.quiet()));
    let mut secret: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("local/secret.json")).unwrap()).unwrap();
    secret["api_url"] = url.into();
    secret["api_key"] = key.into();
    edit(&mut secret);
    tempfile_path::Path::with(&secret.to_string())
}

/// A file removed when dropped.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);
    impl Path {
        pub fn with(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "ac-check-{}-{}.json",
                std::process::id(),
                fastrand_like()
            ));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }
        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    fn fastrand_like() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }
}

/// Runs the tool with `args`: its exit code and its JSON report.
async fn check(args: &[&str]) -> (ExitCode, Value) {
    let cli = Cli::parse_from(["ac-webhook-sync", "check", "--json"].iter().chain(args));
    let mut out = Vec::new();
    let code = run(cli, &mut out).await;
    let report = serde_json::from_slice(&out).unwrap_or(Value::Null);
    (code, report)
}

fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_local_deployment_checks_out_and_names_what_to_paste() {
    let secret = account(Sandbox::new(KEY, Language::English), KEY, |_| {}).await;
    let (code, report) = check(&[
        "--secret-file",
        secret.as_str(),
        "--url",
        "https://abc.lambda-url.us-east-1.on.aws/",
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["account"]["user"], "admin");
    let shopify = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "shopify")
        .unwrap();
    assert_eq!(
        shopify["url"],
        "https://abc.lambda-url.us-east-1.on.aws/webhooks/shopify"
    );
    assert_eq!(
        shopify["secret"], "<webhook_secrets.shopify>",
        "not revealed"
    );
    let form = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sender"] == "form")
        .unwrap();
    assert!(
        form["url"]
            .as_str()
            .unwrap()
            .contains("?token=<webhook_secrets.")
    );
}

#[tokio::test]
async fn a_missing_list_field_tag_secret_or_credential_is_named_and_fails() {
    let mapping = tempfile_path::Path::with(
        "[routes.myshop]\nsender = \"shopify\"\n[[routes.myshop.lists]]\nid = 999\n\
         [routes.myshop.fields]\n\"77\" = \"$.id\"\n\"%NO_SUCH_TAG%\" = \"$.id\"\n\
         [routes.store]\nsender = \"bigcommerce\"\n",
    );
    let secret = account(Sandbox::new(KEY, Language::English), KEY, |s| {
        s["sender_api"]
            .as_object_mut()
            .unwrap()
            .remove("bigcommerce");
    })
    .await;
    let (code, report) = check(&[
        "--secret-file",
        secret.as_str(),
        "--mapping",
        mapping.as_str(),
    ])
    .await;
    assert_eq!(code, ExitCode::from(1), "{report:#}");
    let found = problems(&report);
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "sender_api.bigcommerce.access_token",
            "webhook_secrets.myshop",
            "webhook_secrets.store",
            "sender_api.store.access_token",
            "lists[0].id",
            "fields.%NO_SUCH_TAG%",
            "fields.77",
        ],
        "{found:?}"
    );
    assert!(
        found[4].1.contains("list 999 is not in the account"),
        "{}",
        found[4].1
    );
    assert!(found[5].1.contains("%NO_SUCH_TAG%"), "{}", found[5].1);
}

#[tokio::test]
async fn a_refused_key_is_named_and_fails() {
    let secret = account(
        Sandbox::new(KEY, Language::English),
        "a-revoked-key",
        |_| {},
    )
    .await;
    let (code, report) = check(&["--secret-file", secret.as_str()]).await;
    assert_eq!(code, ExitCode::from(1));
    let found = problems(&report);
    assert_eq!(found[0].0, "api_key");
    assert!(found[0].1.contains("refused the key"), "{}", found[0].1);
    assert!(
        !report.to_string().contains("a-revoked-key"),
        "the key is not printed"
    );
}

/// 250 custom fields: three pages of 100. A field on the last page is found.
#[tokio::test]
async fn every_page_of_fields_is_read() {
    let mut seed = Seed::bundled_account();
    for id in 1000..1250 {
        seed.fields.push(SeedField {
            id,
            perstag: format!("EXTRA_{id}"),
            title: format!("Extra {id}"),
        });
    }
    let sandbox = Sandbox::new(KEY, Language::English).with_seed(seed);
    let secret = account(sandbox, KEY, |_| {}).await;
    let mapping = tempfile_path::Path::with(
        "[routes.shopify]\nsender = \"shopify\"\n[routes.shopify.fields]\n\"1249\" = \"$.id\"\n\"%EXTRA_1201%\" = \"$.id\"\n",
    );
    let (code, report) = check(&[
        "--secret-file",
        secret.as_str(),
        "--mapping",
        mapping.as_str(),
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{report:#}");
    assert!(report["account"]["fields"].as_u64().unwrap() >= 250);
    // users/me, one page of lists, three of fields.
    assert_eq!(report["account"]["requests"], 5);
}
