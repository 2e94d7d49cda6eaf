//! CPU time of processes from /proc/PID/stat (utime + stime, every thread
//! of the process, in clock ticks), as toriibench's `--cpu` reads it, and
//! resident memory from /proc/PID/status.

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

use std::collections::HashMap;

/// Fields 3 onwards of /proc/PID/stat (the command name, field 2, may hold
/// spaces: they start after its ')').
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 3 (the state) is a letter; the numbers that matter come after.
    Some(
        rest.split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime of `pid` in seconds; 0 if the process is gone.
pub fn seconds(pid: u32) -> f64 {
    // Index 11 is field 14 (utime), 12 field 15 (stime).
    stat_fields(pid).map_or(0.0, |f| (f[11] + f[12]) as f64 / TICKS_PER_S)
}

/// The CPU of a process tree at one moment: its root's with the children it
/// has reaped (cutime + cstime), and each living direct child's.
pub struct TreeSample {
    root: f64,
    children: HashMap<u32, f64>,
}

/// A sample of `root` (a postmaster) and its direct children.
pub fn tree(root: u32) -> TreeSample {
    // Fields 14 to 17: utime, stime, cutime, cstime.
    let root_s = stat_fields(root).map_or(0.0, |f| {
        (f[11] + f[12] + f[13] + f[14]) as f64 / TICKS_PER_S
    });
    let mut children = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Index 1 is field 4 (the parent).
            if let Some(f) = stat_fields(pid).filter(|f| f.len() > 12 && f[1] == root as u64) {
                children.insert(pid, (f[11] + f[12]) as f64 / TICKS_PER_S);
            }
        }
    }
    TreeSample {
        root: root_s,
        children,
    }
}

/// Seconds of CPU the tree used from `a` to `b`. A child that exited in
/// between took its CPU into the root's reaped children's (the postmaster
/// waits for its backends at once): what it had before `a` comes off, so
/// the total neither drops when a backend leaves nor counts it twice.
pub fn tree_between(a: &TreeSample, b: &TreeSample) -> f64 {
    let mut s = b.root - a.root;
    for (pid, v) in &b.children {
        s += v - a.children.get(pid).copied().unwrap_or(0.0);
    }
    for (pid, v) in &a.children {
        if !b.children.contains_key(pid) {
            s -= v;
        }
    }
    s
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
