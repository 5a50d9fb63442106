//! CPU time and memory of processes, from `/proc` (Linux), without `unsafe`.
//!
//! CPU times are in clock ticks of `/proc` (USER_HZ, 100 per second on Linux), so they are
//! only meaningful over runs of a second or more; the scenarios run for several.

use std::collections::HashMap;

/// `/proc` reports CPU times in these ticks per second.
const TICKS_PER_SECOND: f64 = 100.0;

/// user + system CPU seconds of one process (all its threads).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = after_comm(&stat)?;
    // Fields after `comm` start at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// This process's CPU seconds.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds("self").unwrap_or(0.0)
}

/// CPU seconds of `root` and every process below it (e.g. postgres and its backends).
pub fn tree_cpu_seconds(root: u32) -> f64 {
    descendants(root)
        .iter()
        .filter_map(|pid| cpu_seconds(&pid.to_string()))
        .sum()
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `root` and all its descendants.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| after_comm(&s)?.get(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// The fields after `(comm)`, which may itself contain spaces and parentheses.
fn after_comm(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_seconds("self").is_some());
        assert!(descendants(std::process::id()).contains(&std::process::id()));
    }
}
