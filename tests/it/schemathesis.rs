//! Schemathesis against the server binary: every operation of the committed document
//! (`docs/openapi.json`, which `openapi.rs` keeps equal to the served one), with generated
//! valid and invalid requests (examples, coverage, fuzzing) and a stateful phase that follows
//! the document's links and the ones it infers (create a session, then read, input, list,
//! stream and delete it). Checks: no 5xx, and every status, content type and body as
//! documented, SSE events included (each event's `data` against its schema). Streams of live
//! sessions are read for a second (`tests/schemathesis.toml`).
//!
//! Needs schemathesis, pinned in `.ci/openapi-tools.txt`: `.ci/run` installs it into
//! `.ci/venv`, or `python3 -m venv .ci/venv && .ci/venv/bin/pip install schemathesis==4.32.5`
//! (`SCHEMATHESIS=/path/to/schemathesis` uses another). The seed is fixed so a failure
//! reproduces; `AGENT_WEBKIT_SCHEMATHESIS_SEED` tries another.

use crate::support::process::ServerProcess;
use crate::support::{Scratch, TestDb, ADMIN_TOKEN};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

pub const VERSION: &str = "4.32.5";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";
const MAX_EXAMPLES: &str = "25";
const DEFAULT_SEED: &str = "17";
const TIMEOUT: Duration = Duration::from_secs(150);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's `bin/` (`.ci/venv`, or `SCHEMATHESIS`'s directory); panics with how to install.
pub fn venv_bin(tool: &str) -> PathBuf {
    let path = match std::env::var_os("SCHEMATHESIS") {
        Some(st) => PathBuf::from(st).with_file_name(tool),
        None => repo().join(".ci/venv/bin").join(tool),
    };
    assert!(
        path.is_file(),
        "{} is missing: the OpenAPI tests need schemathesis {VERSION} and openapi-python-client \
         (pinned in .ci/openapi-tools.txt). Run .ci/run, or:\n    python3 -m venv .ci/venv && \
         .ci/venv/bin/pip install -r .ci/openapi-tools.txt",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let st = venv_bin("schemathesis");
    let db = TestDb::new().await;
    // Queued turns pile up under fuzzing; `503 queue_full` would count as a server error.
    let server = ServerProcess::start(
        &db.url,
        None,
        &[
            "--default-fixture",
            "plain_qa",
            "--max-queued-inputs",
            "100000",
        ],
        &[],
    )
    .await;
    let reports = Scratch::dir("awk-schemathesis-");
    let seed =
        std::env::var("AGENT_WEBKIT_SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let out = tokio::time::timeout(
        TIMEOUT,
        Command::new(&st)
            .arg("--config-file")
            .arg(repo().join("tests/schemathesis.toml"))
            .arg("run")
            .arg(repo().join("docs/openapi.json"))
            .args(["--url", &server.api.base])
            .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .args(["--checks", CHECKS])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", &seed])
            .args(["--workers", "2"])
            .args(["--report", "junit", "--report-dir"])
            .arg(&*reports)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .current_dir(&*reports)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("schemathesis ran over {TIMEOUT:?}"))
    .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems (seed {seed}; server log {}):\n{stdout}\n{stderr}",
        server.log.display()
    );
    // Every operation was tested.
    let ops = agent_webkit_server::http::openapi::document()
        .paths
        .paths
        .values()
        .map(|item| {
            [&item.get, &item.post, &item.delete]
                .iter()
                .filter(|op| op.is_some())
                .count()
        })
        .sum::<usize>();
    assert!(stdout.contains(&format!("Tested: {ops}")), "{stdout}");
    eprintln!("{stdout}");
    server.stop().await;
}
