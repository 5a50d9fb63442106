//! A client generated from `docs/openapi.json` works against the server: openapi-python-client
//! (pinned, in `.ci/venv` with schemathesis; see `schemathesis.rs`) generates the package at
//! test time, and `tests/py/typed_client.py` creates a session, sends a message, reads the
//! turn's events, deletes the session and gets the typed `410`, all through the generated
//! models. A document that generates no usable client, or an answer the document does not
//! list, fails here.

use crate::schemathesis::venv_bin;
use crate::support::{Scratch, TestDb, TestServer, TOKEN};
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_creates_drives_and_deletes_a_session() {
    let generator = venv_bin("openapi-python-client");
    let bin = generator.parent().unwrap().to_owned();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Scratch::dir("awk-client-");
    // The generator formats its output with ruff, which it finds on PATH (the venv's).
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let generated = tokio::time::timeout(
        TIMEOUT,
        Command::new(&generator)
            .args(["generate", "--meta", "none", "--path"])
            .arg(repo.join("docs/openapi.json"))
            .arg("--output-path")
            .arg(dir.join("awk_client"))
            .env("PATH", &path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("openapi-python-client timed out")
    .expect("running openapi-python-client");
    let log = String::from_utf8_lossy(&generated.stdout).into_owned()
        + &String::from_utf8_lossy(&generated.stderr);
    assert!(generated.status.success(), "{log}");
    // Every operation generated (it warns and skips what it cannot express).
    assert!(!log.contains("Warning"), "{log}");

    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let out = tokio::time::timeout(
        TIMEOUT,
        Command::new(bin.join("python"))
            .arg(repo.join("tests/py/typed_client.py"))
            .env("PYTHONPATH", &*dir)
            .env("AGENT_WEBKIT_URL", &server.api.base)
            .env("AGENT_WEBKIT_TOKEN", TOKEN)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the generated client did not finish")
    .expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"][0], "session_ready", "{report}");
    assert_eq!(report["after_delete"], "session_closed", "{report}");
    server.stop().await;
}
