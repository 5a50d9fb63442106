//! The published JS client and React hook, unchanged, against this server.
//! `tests/js/contract.mjs` drives `@agent-webkit/core` 0.2.0 through a turn, a permission race
//! (the second reply gets its 409), a question, a resume from the history, a resume past the end
//! (412) and a detach/attach mid-turn, over the same fetch-based transport browsers use;
//! `tests/js/hook.mjs` renders `@agent-webkit/react`'s `useAgentSession` with
//! react-test-renderer through an approved permission and an answered question. Versions are
//! pinned with their checksums in `tests/js/package-lock.json`. Needs `node` and `npm` (`.ci/run` installs them); the package is
//! installed into `tests/js/node_modules` by `npm ci` on first use.

use crate::support::{TestDb, TestServer, TOKEN};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

const NODE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Installs once per test process: the tests run concurrently, and two `npm ci` in one
/// directory would delete each other's files.
pub async fn ensure_installed(dir: &Path) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED.get_or_init(|| install(dir)).await;
}

/// Whether `node_modules` holds every package `package.json` pins, at that exact version: a
/// missing one means `npm ci` has not run, a different version that the pins moved on.
fn installed(dir: &Path) -> bool {
    let read = |p: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let Some(manifest) = read(dir.join("package.json")) else {
        return false;
    };
    let Some(pins) = manifest["dependencies"].as_object() else {
        return false;
    };
    pins.iter().all(|(name, version)| {
        read(dir.join("node_modules").join(name).join("package.json"))
            .is_some_and(|p| p["version"] == *version)
    })
}

async fn install(dir: &Path) {
    if installed(dir) {
        return;
    }
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .output(),
    )
    .await
    .expect("npm ci timed out")
    .expect("npm is needed for the JS client test (apt-get install npm, or .ci/run)");
    assert!(
        out.status.success(),
        "npm ci failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(installed(dir), "npm ci did not install the pinned packages");
}

/// Runs `tests/js/<script>` against a fresh server; returns its JSON report.
async fn run_script(script: &str) -> serde_json::Value {
    let dir = js_dir();
    ensure_installed(&dir).await;
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let out = tokio::time::timeout(
        NODE_TIMEOUT,
        Command::new("node")
            .arg(script)
            .current_dir(&dir)
            .env("AGENT_WEBKIT_URL", &server.api.base)
            .env("AGENT_WEBKIT_TOKEN", TOKEN)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the JS client did not finish")
    .expect("node is needed for the JS client test (apt-get install nodejs, or .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    server.stop().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_js_client_works_unchanged() {
    let report = run_script("contract.mjs").await;
    assert_eq!(report["seen"]["plain"][0], "session_ready");
    assert_eq!(report["seen"]["detach"][1], 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_react_hook_works_unchanged() {
    let report = run_script("hook.mjs").await;
    // user message, the tool call's assistant message, its result, the answer.
    let kinds = &report["seen"]["permission"];
    assert_eq!(
        kinds,
        &serde_json::json!(["user", "assistant", "tool_result", "assistant"]),
        "{report}"
    );
}
