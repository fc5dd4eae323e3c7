//! The functions' log set-up: Lambda's level and format (`AWS_LAMBDA_LOG_LEVEL`, else
//! `RUST_LOG`; `AWS_LAMBDA_LOG_FORMAT=JSON`), except that libraries log at INFO at most,
//! whatever the level. At TRACE the Lambda runtime logs every raw event it receives (the
//! route's `?token=`, signature headers, full emails) and the HTTP and AWS clients log what
//! they send; this project's own code masks and redacts at every level, so DEBUG and TRACE
//! apply to it alone.

use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};

/// The crates whose logs follow the configured level: this library and its binaries.
const OWN_TARGETS: [&str; 5] = [
    "ac_webhook_sync",
    "webhook",
    "sync_worker",
    "import_callback",
    "import_reconciler",
];

/// Installs the subscriber on stdout (where Lambda collects logs).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let collector = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter(level));
    if json {
        collector.json().init();
    } else {
        collector.init();
    }
}

/// `level` for this project's code, and at most INFO for everything else.
pub fn filter(level: LevelFilter) -> EnvFilter {
    let libraries = level.min(LevelFilter::INFO);
    let mut directives = libraries.to_string().to_lowercase();
    for target in OWN_TARGETS {
        directives.push_str(&format!(",{target}={}", level.to_string().to_lowercase()));
    }
    EnvFilter::new(directives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_never_log_below_info() {
        let trace = filter(LevelFilter::TRACE).to_string();
        assert!(trace.contains("ac_webhook_sync=trace"), "{trace}");
        assert!(trace.split(',').any(|d| d == "info"), "{trace}");
        let warn = filter(LevelFilter::WARN).to_string();
        assert!(warn.split(',').any(|d| d == "warn"), "{warn}");
        assert!(warn.contains("ac_webhook_sync=warn"), "{warn}");
    }
}
