//! The harness cleans up after itself: what a passing test made in the temp dir is gone when
//! its guards drop, and what a failing one made is kept for a look.

use crate::support::{fixtures_with, throwaway_cluster, Scratch};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[test]
fn scratch_is_removed_after_a_pass_and_kept_after_a_panic() {
    let dir = Scratch::dir("awk-harness-");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/file"), "x").unwrap();
    let file = Scratch::file("awk-harness-", ".log");
    let paths = [dir.to_path_buf(), file.to_path_buf()];
    drop((dir, file));
    assert!(paths.iter().all(|p| !p.exists()), "{paths:?}");

    let kept = Mutex::new(PathBuf::new());
    let outcome = std::panic::catch_unwind(|| {
        let dir = Scratch::dir("awk-harness-");
        *kept.lock().unwrap() = dir.to_path_buf();
        panic!("a failing test");
    });
    assert!(outcome.is_err());
    let kept = kept.into_inner().unwrap();
    assert!(kept.is_dir(), "a failed test's directory is kept");
    std::fs::remove_dir(kept).unwrap();
}

#[test]
fn a_fixtures_directory_goes_with_its_guard() {
    let fixtures = fixtures_with(&[("extra", String::new())]);
    let path = fixtures.to_path_buf();
    assert!(path.join("plain_qa.jsonl").is_file() && path.join("extra.jsonl").is_file());
    drop(fixtures);
    assert!(!path.exists());
}

/// As root, the cluster runs as `postgres`: its whole directory must still go, not only what is
/// inside.
#[tokio::test]
async fn a_throwaway_cluster_leaves_no_directory_behind() {
    let (cluster, dir) = throwaway_cluster().await.unwrap();
    assert!(dir.join("PG_VERSION").is_file());
    // Dropped rather than stopped, as when the test process exits: the watchdog cleans up.
    drop(cluster);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.exists() {
        assert!(Instant::now() < deadline, "{} left behind", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
