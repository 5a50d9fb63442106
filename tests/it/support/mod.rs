//! Test harness: one throwaway PostgreSQL cluster per test binary (the same code as the
//! embedded default), a fresh database per test, the real server on a loopback port, and a
//! small HTTP + SSE client.

pub mod api;
pub mod drill;
pub mod fleet;
pub mod metrics;
pub mod process;
pub mod proxy;
pub mod scratch;
pub mod sse;
pub mod tools;

use agent_webkit_server::config::{AuthMode, Config};
use pg_embedded::{ClusterOptions, EmbeddedError, PgCluster};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api::Api;
pub use scratch::Scratch;

pub const TOKEN: &str = "test-token";

/// Port of the cluster shared by every test of this binary.
fn cluster_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        init_tracing();
        // Started on its own runtime and leaked: it lives as long as the test process, and its
        // watchdog stops it and deletes its directory when the process exits.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (cluster, _dir) = rt
                .block_on(throwaway_cluster())
                .expect("starting the test PostgreSQL cluster");
            let port = cluster.port();
            std::mem::forget(cluster);
            std::mem::forget(rt);
            port
        })
        .join()
        .unwrap()
    })
}

/// An ephemeral cluster in `<tmp>/awk-test-pg-*` (returned too). It stops and deletes that
/// directory once the cluster is stopped or dropped, or the process exits. The data dir is the
/// temp dir's child itself: the watchdog, which runs as `postgres` when we are root, may delete
/// it from the sticky, world-writable temp dir, but from a parent of root's it could only empty
/// it, and every test run left an `awk-test-pg-*/data` behind.
pub async fn throwaway_cluster() -> Result<(PgCluster, PathBuf), EmbeddedError> {
    let dir = tempfile::Builder::new()
        .prefix("awk-test-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let cluster = PgCluster::start(ClusterOptions {
        data_dir: dir.clone(),
        ephemeral: true,
        fsync: false,
        port: None,
    })
    .await?;
    Ok((cluster, dir))
}

fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A database of its own for one test.
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let port = cluster_port();
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test cluster");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:{port}/{name}"),
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
}

/// A server running in this process through the same `app::run` as the binary.
pub struct TestServer {
    pub api: Api,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub fn config(db: &TestDb) -> Config {
        let mut config = Config::new(db.url.clone(), AuthMode::Token(TOKEN.into()));
        config.agent.replay.fixtures = fixtures_dir();
        config.agent.replay.default_fixture = Some("plain_qa".into());
        config.store.pool_size = 8;
        // `/metrics` on the main listener is for admins (`support::metrics::scrape` uses it).
        config.auth.admin_token = Some(agent_webkit_server::config::Secret(ADMIN_TOKEN.into()));
        // Tests stop servers with turns parked on permissions; do not wait 30 s for them.
        config.host.drain_timeout = Duration::from_millis(300);
        config
    }

    pub async fn start(db: &TestDb) -> TestServer {
        TestServer::start_with(TestServer::config(db)).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(agent_webkit_server::app::run(
            config,
            listener,
            shutdown.clone(),
        ));
        let api = Api::new(base, TOKEN);
        // Ready when /readyz answers (migrations done).
        for _ in 0..200 {
            if api.get_status("/readyz").await == Some(200) {
                return TestServer {
                    api,
                    shutdown,
                    task,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become ready");
    }

    /// Graceful shutdown (releases every session), as on SIGTERM.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server shutdown timed out")
            .unwrap()
            .unwrap();
    }
}

/// A fixtures directory with the reference scenarios plus test-made ones: `slow` (a turn that
/// sleeps 30 s mid-way), and any `extra` given as (name, JSON Lines). Removed when the guard
/// drops, unless the test failed.
pub fn fixtures_with(extra: &[(&str, String)]) -> Scratch {
    let dir = Scratch::dir("awk-fixtures-");
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let slow = [
        r#"{"kind":"expect_user_query"}"#,
        r#"{"kind":"outbound","message":{"type":"AssistantMessage","id":"m_1","content":[{"type":"text","text":"thinking..."}],"model":"m"}}"#,
        r#"{"kind":"delay","seconds":30}"#,
        r#"{"kind":"outbound","message":{"type":"ResultMessage","subtype":"success"}}"#,
    ]
    .join("\n");
    std::fs::write(dir.join("slow.jsonl"), slow).unwrap();
    for (name, body) in extra {
        std::fs::write(dir.join(format!("{name}.jsonl")), body).unwrap();
    }
    dir
}

/// A one-turn scenario of `n` assistant messages of about `bytes` bytes each, then a result:
/// the session's events are 1 (ready) + n + 1 (result).
pub fn many_messages(n: usize, bytes: usize) -> String {
    let mut lines = vec![r#"{"kind":"expect_user_query"}"#.to_owned()];
    let text = "x".repeat(bytes);
    for i in 0..n {
        lines.push(
            serde_json::json!({"kind":"outbound","message":{"type":"AssistantMessage","id":format!("m_{i}"),
                "content":[{"type":"text","text":text}],"model":"m","stop_reason":"end_turn"}})
            .to_string(),
        );
    }
    lines.push(
        r#"{"kind":"outbound","message":{"type":"ResultMessage","subtype":"success"}}"#.into(),
    );
    lines.join("\n")
}

pub const JWT_SECRET: &str = "test-jwt-secret";
pub const JWT_ISSUER: &str = "test-issuer";
pub const JWT_AUDIENCE: &str = "agent-webkit-test";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A config that also accepts HS256 JWTs (`role=admin` marks admins), besides the admin token.
pub fn jwt_config(db: &TestDb) -> Config {
    use agent_webkit_server::config::{JwtSettings, Secret};
    let mut config = TestServer::config(db);
    config.auth.jwt = Some(JwtSettings {
        hs256_secret: Some(Secret(JWT_SECRET.into())),
        issuer: Some(JWT_ISSUER.into()),
        audience: Some(JWT_AUDIENCE.into()),
        admin_claim: Some("role=admin".into()),
        ..JwtSettings::default()
    });
    config
}

/// Runs the binary's `audit <args>` against `db`: its stdout, or its stderr as the error.
pub async fn audit_cli(db: &TestDb, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-webkit-server"))
        .arg("audit")
        .args(args)
        .args(["--database-url", &db.url])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "audit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// A valid HS256 token for `sub` (an hour left), with `extra` claims merged over the defaults.
pub fn jwt(sub: &str, extra: serde_json::Value) -> String {
    let mut claims = serde_json::json!({
        "sub": sub,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "exp": jsonwebtoken::get_current_timestamp() + 3600,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    jwt_signed(&claims, JWT_SECRET)
}

pub fn jwt_signed(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
