//! The Lambda bootstraps are linked at a fixed address (build.rs): the loader has no pointers
//! to rewrite before the first webhook (README, Performance). Where build.rs links them
//! (dynamically linked glibc).

#![cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static")
))]

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// The ELF header's `e_type`: 2 for an executable at a fixed address, 3 for a
/// position-independent one.
fn elf_type(path: &str) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..4], b"\x7fELF", "{path} is not an ELF file");
    u16::from_le_bytes([bytes[16], bytes[17]])
}

#[test]
fn every_lambda_bootstrap_is_linked_at_a_fixed_address() {
    let expected = match option_env!("AC_WEBHOOK_SYNC_PIE") {
        Some(v) if !v.is_empty() && v != "0" => ET_DYN,
        _ => ET_EXEC,
    };
    for path in [
        env!("CARGO_BIN_EXE_webhook"),
        env!("CARGO_BIN_EXE_sync-worker"),
        env!("CARGO_BIN_EXE_import-callback"),
        env!("CARGO_BIN_EXE_import-reconciler"),
    ] {
        assert_eq!(elf_type(path), expected, "{path}: e_type");
    }
}
