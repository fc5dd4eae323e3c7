//! Replays every input a fuzz target ever failed on (`fuzz/regressions/<target>/*`) through the
//! same entry point the target uses (`ac_webhook_sync::fuzzing`), on stable, in `cargo test`.
//! Each entry point panics when an invariant breaks, so "no panic" is the assertion; the
//! documented answer for each input found is asserted by the tests below the replayer.
//!
//! `FUZZ_CORPUS=fuzz/corpus cargo test --test fuzz_regressions` also replays local corpora.

use std::path::{Path, PathBuf};

use ac_webhook_sync::fuzzing::TARGETS;
use ac_webhook_sync::mapping::template::{Expression, MAX_PATH_NESTING};
use ac_webhook_sync::mapping::{Mapping, MappingError};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input under `root/<target>/`, naming the input that panicked.
fn replay(root: &Path) -> usize {
    let mut count = 0;
    for (target, entry) in TARGETS {
        for path in inputs(&root.join(target)) {
            let data = std::fs::read(&path).expect("readable input");
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_regression_input_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let replayed = replay(&root);
    // The directory is never empty once a target has found something: a replayer that
    // silently found no files would pass while testing nothing.
    assert!(
        replayed > 0,
        "no regression inputs under {}",
        root.display()
    );
}

#[test]
fn local_corpora_replay_when_asked() {
    if let Some(root) = std::env::var_os("FUZZ_CORPUS") {
        let replayed = replay(Path::new(&root));
        eprintln!("replayed {replayed} corpus inputs");
    }
}

/// `mapping_template` timed out (minutes) on a JSONPath of 25 nested, unclosed filter
/// selectors: the parser backtracks, doubling its time per level. Deeper paths are refused
/// before parsing, with an error naming the limit, at compile time and in the mapping file.
#[test]
fn nested_selectors_are_refused_before_the_parser_backtracks() {
    let nested = |levels: usize| format!("$.a{}{}", "[?@.b".repeat(levels), "]".repeat(levels));
    assert!(Expression::compile(&nested(MAX_PATH_NESTING)).is_ok());
    let error = Expression::compile(&nested(MAX_PATH_NESTING + 1)).unwrap_err();
    assert!(error.contains("deeper than 8 levels"), "{error}");
    let unclosed = format!("$.a{}", "[?@.b".repeat(25));
    assert!(
        Expression::compile(&unclosed)
            .unwrap_err()
            .contains("deeper than")
    );
    // In a template placeholder, and a `]` inside a quoted name does not close a level.
    let quoted = format!("x{{$.a{}}}", "[']'][?@.b".repeat(MAX_PATH_NESTING + 1));
    assert!(
        Expression::compile(&quoted)
            .unwrap_err()
            .contains("deeper than")
    );
    let toml = format!(
        "[routes.deep]\nsender = \"form\"\n[routes.deep.contact]\nemail = {:?}\n",
        nested(MAX_PATH_NESTING + 1)
    );
    match Mapping::from_toml(&toml) {
        Err(MappingError::Invalid { key, message, .. }) => {
            assert_eq!(key, "contact.email");
            assert!(message.contains("deeper than"), "{message}");
        }
        other => panic!("expected the route to be refused, got {other:?}"),
    }
}
