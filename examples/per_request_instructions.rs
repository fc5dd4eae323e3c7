//! Runs one per-request (or start-up) workload N times, for instruction counts under callgrind (which,
//! unlike timings, do not depend on what else the machine is doing). `scripts/perf.py` runs it
//! with N = 1 and N = 101 and divides the difference by 100, so set-up is not counted.
//!
//!     valgrind --tool=callgrind target/release/examples/per_request_instructions plan 101

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::process::ExitCode;

const USAGE: &str = "usage: per_request_instructions plan|serde|mapping ITERATIONS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(workload), Some(Ok(iterations))) =
        (args.first(), args.get(1).map(|n| n.parse::<u32>()))
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let (mapping, secret) = common::fixtures();
    let req = common::order_request(&secret);
    let mut total = 0usize;
    for _ in 0..iterations {
        total += match workload.as_str() {
            "plan" => common::plan_and_encode(&mapping, &secret, black_box(&req)),
            "serde" => serde_json::from_slice::<serde_json::Value>(black_box(&req.body))
                .map_or(0, |v| usize::from(v.is_object())),
            // The start-up cost of the bundled mapping (TOML, JSONPath templates).
            "mapping" => ac_webhook_sync::mapping::Mapping::bundled()
                .map_or(0, |m| usize::from(m.route("shop").is_some())),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        };
    }
    println!("{total}");
    ExitCode::SUCCESS
}
