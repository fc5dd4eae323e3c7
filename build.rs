//! Two things for a faster cold start (README, Performance):
//!
//! - The Lambda bootstraps are linked as fixed-address executables (not position-independent),
//!   as Go links its Linux binaries by default. A position-independent `webhook` starts by
//!   having the loader rewrite 31,000 pointers: it reads a 745 KB relocation table and copies
//!   the 511 KB of pages they sit in, about a tenth of the first queued webhook's time. The
//!   trade: the executable's own code sits at one address in every container; libraries, heap
//!   and stack are still randomised. `AC_WEBHOOK_SYNC_PIE=1` at build time links it
//!   position-independent again.
//! - The bundled `mapping.toml` is converted to JSON, which the function parses in a fraction
//!   of the time the TOML takes; a syntax error in it fails the build rather than the start.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    link_bins_at_a_fixed_address();
    bundled_mapping_as_json();
}

fn link_bins_at_a_fixed_address() {
    println!("cargo::rerun-if-env-changed=AC_WEBHOOK_SYNC_PIE");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // Dynamically linked glibc only: a static link (musl, crt-static) is static-PIE, which
    // `-no-pie` would contradict.
    let glibc = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    let pie = !matches!(var("AC_WEBHOOK_SYNC_PIE").as_str(), "" | "0");
    if glibc && !pie {
        // Only this package's binaries: the tests, benchmarks and examples (the hello-world
        // baseline of scripts/coldstart.py among them) keep rustc's default.
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}

fn bundled_mapping_as_json() {
    println!("cargo::rerun-if-changed=mapping.toml");
    let source = std::fs::read_to_string("mapping.toml")
        .unwrap_or_else(|e| panic!("mapping.toml could not be read: {e}"));
    let table: toml::Table =
        toml::from_str(&source).unwrap_or_else(|e| panic!("mapping.toml is not valid TOML: {e}"));
    // JSON has no NaN or infinity (serde_json writes null, which would read as "unset"): such
    // a mapping gets no JSON, so the function reads the TOML and refuses the value by name.
    let json = if table.values().all(all_finite) {
        serde_json::to_string(&table)
            .unwrap_or_else(|e| panic!("mapping.toml could not be written as JSON: {e}"))
    } else {
        String::new()
    };
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    std::fs::write(Path::new(&out).join("mapping.json"), json)
        .unwrap_or_else(|e| panic!("{out}/mapping.json could not be written: {e}"));
}

fn all_finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(f) => f.is_finite(),
        toml::Value::Array(values) => values.iter().all(all_finite),
        toml::Value::Table(table) => table.values().all(all_finite),
        _ => true,
    }
}
