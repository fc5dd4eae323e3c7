//! Replays every input a fuzz target ever failed on (`fuzz/regressions/<target>/*`) through the
//! same entry point the target uses (`ac_webhook_sync::fuzzing`), on stable, in `cargo test`.
//! Each entry point panics when an invariant breaks, so "no panic" is the assertion; the
//! documented answer for each input found is asserted by the tests below the replayer.
//!
//! `FUZZ_CORPUS=fuzz/corpus cargo test --test fuzz_regressions` also replays local corpora.

use std::path::{Path, PathBuf};

use ac_webhook_sync::fuzzing::TARGETS;

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
