//! The operator console (`/console`): its headers and assets, `GET /hosts` for admins, and the
//! whole console in headless Chromium. `tests/js/console.mjs` drives it with puppeteer-core
//! (pinned in `tests/js/package-lock.json`, installed by the JS client tests' `npm ci`)
//! through sign-in, a session created and answered from the page, a permission race lost in
//! a second tab (409, "answered elsewhere"), the decision's story in the audit view and its
//! CSV/JSON export, hostile event content shown as text with no dialog, a question answered
//! from its form, and a wrong token's 401. Needs `/usr/bin/chromium` (`apt-get install chromium`, or `.ci/run`).
//!
//! With `AGENT_WEBKIT_CONSOLE_SCREENSHOTS=docs` the browser test also saves the README's
//! pictures, `docs/console-session.png` and `docs/console-audit.png` (a relative directory is
//! taken from the repository root).

use crate::js_client::{ensure_installed, js_dir};
use crate::support::{fixtures_with, Scratch, TestDb, TestServer, ADMIN_TOKEN, TOKEN};
use agent_webkit_server::http::console::CSP;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);
const CHROMIUM: &str = "/usr/bin/chromium";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// A turn whose assistant text, tool input and tool result all hold markup.
fn xss_fixture() -> String {
    let msg =
        |m: serde_json::Value| serde_json::json!({"kind": "outbound", "message": m}).to_string();
    [
        r#"{"kind":"expect_user_query"}"#.to_owned(),
        msg(serde_json::json!({"type": "AssistantMessage", "id": "m_1", "model": "m", "content": [
            {"type": "text", "text": XSS},
            {"type": "tool_use", "id": "tu_x", "name": "Read", "input": {"path": XSS}}]})),
        msg(serde_json::json!({"type": "UserMessage", "content": [
            {"type": "tool_result", "tool_use_id": "tu_x", "content": XSS, "is_error": false}]})),
        msg(serde_json::json!({"type": "AssistantMessage", "id": "m_2", "model": "m",
            "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "done: <script>alert(2)</script>"}]})),
        msg(serde_json::json!({"type": "ResultMessage", "subtype": "success", "total_cost_usd": 0.001})),
    ]
    .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_browser() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "the console test needs {CHROMIUM} (apt-get install chromium, or .ci/run)"
    );
    let dir = js_dir();
    ensure_installed(&dir).await;
    let fixtures = fixtures_with(&[("xss", xss_fixture())]);
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let scratch = Scratch::dir("awk-console-");
    let mut node = Command::new("node");
    node.arg("console.mjs")
        .current_dir(&dir)
        .env("AGENT_WEBKIT_URL", &server.api.base)
        .env("AGENT_WEBKIT_TOKEN", TOKEN)
        .env("AGENT_WEBKIT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CONSOLE_SCRATCH", scratch.path())
        .kill_on_drop(true);
    if let Some(shots) = std::env::var_os("AGENT_WEBKIT_CONSOLE_SCREENSHOTS") {
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join(shots);
        std::fs::create_dir_all(&shots).unwrap();
        node.env("CONSOLE_SCREENSHOTS", shots);
    }
    let out = tokio::time::timeout(BROWSER_TIMEOUT, node.output())
        .await
        .expect("the console test did not finish")
        .expect("node is needed for the console test (apt-get install nodejs, or .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // On failure the script saved a screenshot of each open page in the scratch dir (kept).
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let story = &report["seen"]["story"];
    assert!(
        story
            .as_array()
            .unwrap()
            .contains(&"input:permission_response:409".into()),
        "{report}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_assets_carry_a_strict_csp_and_need_no_token() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.api.base)).send();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/assets/app.js", "text/javascript"),
        ("/console/assets/style.css", "text/css"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-security-policy"), CSP, "{path}");
        assert!(header("content-type").starts_with(kind), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    assert!(CSP.contains("default-src 'none'; script-src 'self'; style-src 'self'"));
    assert!(CSP.contains("frame-ancestors 'none'"));
    let missing = get("/console/assets/../Cargo.toml").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(get("/console/assets/nope.js").await.unwrap().status(), 404);
    server.stop().await;
}

/// What CSP and review promise, checked in the source: no markup from strings, no inline
/// script or style, no storage of the token.
#[test]
fn console_sources_never_build_markup_from_strings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage.setItem",
            "sessionStorage.setItem",
            "document.cookie =",
            "new EventSource",
        ] {
            assert!(!text.contains(banned), "{name} uses {banned}");
        }
        if path.extension().is_some_and(|e| e == "html") {
            assert!(!text.contains(" style="), "{name}: inline style");
            assert!(!text.contains("<style"), "{name}: inline style");
            let scripts = text.matches("<script").count();
            let external = text
                .matches("<script type=\"module\" src=\"/console/assets/")
                .count();
            assert_eq!(scripts, external, "{name}: inline script");
            assert!(!text.contains(" onclick="), "{name}: inline handler");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_hosts_endpoint_is_admin_only() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    // A session owned by this host: created, then claimed by its first input.
    let id = server.api.create("plain_qa").await;
    server.api.say(&id, "hello").await;

    let anonymous = server.api.with_token("");
    assert_eq!(anonymous.get_status("/hosts").await, Some(401));
    let (status, body) = server.api.get_json("/hosts").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "admin_required");

    let admin = server.api.with_token(ADMIN_TOKEN);
    let body = hosts_once_alive(&admin).await;
    let hosts = body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{body}");
    let host = &hosts[0];
    assert_eq!(host["alive"], true, "{body}");
    assert_eq!(host["sessions_owned"], 1, "{body}");
    assert!(host["lease_age_secs"].as_f64().unwrap() < 10.0, "{body}");
    assert!(host["released_at"].is_null());
    assert!(body["lease_secs"].as_f64().unwrap() > 0.0);
    let (status, body) = admin.get_json("/hosts?limit=0").await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (400, &"invalid_limit".into())
    );
    let (status, body) = admin.get_json("/hosts?status=alive").await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (400, &"unknown_parameter".into())
    );

    // A host that left cleanly is released, not alive, and owns nothing.
    server.stop().await;
    let server = TestServer::start(&db).await;
    let body = hosts_once_alive(&server.api.with_token(ADMIN_TOKEN)).await;
    let hosts = body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{body}");
    assert_eq!(hosts[0]["alive"], true, "live hosts first: {body}");
    assert_eq!(hosts[1]["alive"], false, "{body}");
    assert!(hosts[1]["released_at"].is_string(), "{body}");
    assert_eq!(hosts[1]["sessions_owned"], 0, "{body}");
    server.stop().await;
}

/// `GET /hosts` once the first (newest) host is alive: ready (migrations done) comes a moment
/// before a new host holds its advisory lock.
async fn hosts_once_alive(admin: &crate::support::Api) -> serde_json::Value {
    let mut body = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, b) = admin.get_json("/hosts").await;
        assert_eq!(status, 200, "{b}");
        body = b;
        if body["hosts"][0]["alive"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    body
}
