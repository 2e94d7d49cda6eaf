//! The client's operation table against the protocol's one table
//! (lib/torii/operations.cpp), as the exporter `torii_ops_table` prints it:
//! $TORII_OPS_TABLE_BIN (tools/test sets it), else the dev preset's build.
//! A row added, dropped or changed on either side fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use toriid_client::{is_idempotent, operation, OPERATIONS};

fn exporter() -> PathBuf {
    if let Ok(b) = std::env::var("TORII_OPS_TABLE_BIN") {
        return PathBuf::from(b);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../build/dev/tests/torii_ops_table")
}

fn cxx_table() -> Vec<serde_json::Value> {
    let bin = exporter();
    let out = Command::new(&bin).output().unwrap_or_else(|e| {
        panic!(
            "cannot run the operation table exporter {} ({e}): build the dev preset, or set TORII_OPS_TABLE_BIN",
            bin.display()
        )
    });
    assert!(out.status.success(), "{} failed", bin.display());
    let table: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("the exporter prints a JSON array");
    assert!(
        table.len() > 40,
        "the exporter printed the table, not nothing"
    );
    table
}

fn flag(row: &serde_json::Value, key: &str) -> bool {
    row[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{key} of {row}"))
}

#[test]
fn the_same_operations_in_the_same_order() {
    let cxx: Vec<String> = cxx_table()
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect();
    let ours: Vec<String> = OPERATIONS.iter().map(|o| o.name.to_string()).collect();
    assert_eq!(cxx, ours);
}

#[test]
fn the_same_properties() {
    for row in cxx_table() {
        let name = row["name"].as_str().expect("name");
        let op = operation(name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(
            (op.read_only, op.retry_safe, op.local),
            (
                flag(&row, "read_only"),
                flag(&row, "retry_safe"),
                flag(&row, "local")
            ),
            "{row}"
        );
    }
}

#[test]
fn retries_follow_the_table() {
    for row in cxx_table() {
        let name = row["name"].as_str().expect("name");
        assert_eq!(is_idempotent(name), flag(&row, "retry_safe"), "{name}");
    }
    assert!(!is_idempotent("no_such_op"));
}
