//! `fake-claude`: a stand-in for the Claude Code CLI, for the integration tests.
//!
//! It speaks stream-json as `docs/claude-cli.md` (§2–§6) describes and the recorded transcripts show: it parses the
//! launch flags, answers `initialize` and the other control requests, runs turns from a
//! scenario file (`FAKE_CLAUDE_SCENARIO`, see `scenario.rs`), asks for permissions and hook
//! decisions over stdio, honours interrupts, keeps "transcripts" (a state file per session id
//! under `$CLAUDE_CONFIG_DIR/fake-sessions/`) so `--session-id` of a used id and `--resume` of
//! an unknown one fail like the real CLI, finishes its turn on stdin EOF, and exits on the
//! first malformed stdin line. Everything it sees is appended to `FAKE_CLAUDE_RECORD`.

mod cli;
mod record;
mod scenario;
mod tools;
mod transcript;
mod turn;

use cli::{Cli, Wake};
use record::Recorder;
use scenario::Scenario;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// The launch flags the fake understands (others are accepted and ignored).
#[derive(Default)]
struct Args {
    output_stream_json: bool,
    input_stream_json: bool,
    verbose: bool,
    prompt_tool: bool,
    partial: bool,
    model: Option<String>,
    mode: Option<String>,
    session_id: Option<String>,
    resume: Option<String>,
    session_mirror: bool,
}

fn parse_args() -> Args {
    let mut args = Args::default();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((flag, value)) if argv[i].starts_with("--") => (flag, Some(value.to_owned())),
            _ => (argv[i].as_str(), None),
        };
        let takes_value = matches!(
            flag,
            "--output-format"
                | "--input-format"
                | "--permission-prompt-tool"
                | "--model"
                | "--permission-mode"
                | "--session-id"
                | "--resume"
                | "--max-turns"
                | "--allowedTools"
                | "--disallowedTools"
                | "--system-prompt"
        );
        let value = if inline.is_some() || !takes_value {
            inline
        } else {
            i += 1;
            argv.get(i).cloned()
        };
        match flag {
            "--output-format" => args.output_stream_json = value.as_deref() == Some("stream-json"),
            "--input-format" => args.input_stream_json = value.as_deref() == Some("stream-json"),
            "--verbose" => args.verbose = true,
            "--permission-prompt-tool" => args.prompt_tool = value.as_deref() == Some("stdio"),
            "--include-partial-messages" => args.partial = true,
            "--model" => args.model = value,
            "--permission-mode" => args.mode = value,
            "--session-id" => args.session_id = value,
            "--resume" => args.resume = value,
            "--session-mirror" => args.session_mirror = true,
            _ => {}
        }
        i += 1;
    }
    args
}

fn fail(record: &Recorder, message: &str) -> ! {
    eprintln!("{message}");
    record.write("exit", json!({"code": 1}));
    std::process::exit(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let record = Recorder::from_env();
    record.start();
    let scenario = Scenario::load();
    let args = parse_args();
    if args.output_stream_json && !args.verbose {
        fail(
            &record,
            "Error: When using --print, --output-format=stream-json requires --verbose",
        );
    }
    if !args.input_stream_json || !args.output_stream_json {
        fail(
            &record,
            "fake-claude: only stream-json input and output are supported",
        );
    }
    if args.session_mirror && scenario.refuse_session_mirror {
        // What a CLI that predates the flag does.
        fail(&record, "error: unknown option '--session-mirror'");
    }
    for line in &scenario.stderr {
        eprintln!("{line}");
    }
    if scenario.ignore_sigterm {
        let record = record.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                while term.recv().await.is_some() {
                    record.write("sigterm_ignored", json!({}));
                }
            }
        });
    }
    if scenario.spawn_child {
        let child = std::process::Command::new("sleep")
            .arg("600")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(child) = child {
            record.write("child", json!({"child": child.id()}));
        }
    }
    let mut cost = 0.0;
    let mut last_entry = None;
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let session_id = match (&args.session_id, &args.resume) {
        (_, Some(id)) => match transcript::load(&cwd, id) {
            Some(entries) => {
                // What the model would be given: the whole prior conversation.
                record.write("resumed", json!({"session_id": id, "entries": entries}));
                let mut costs = entries.iter().filter(|e| e["type"] == "fake-cost");
                cost = costs
                    .next_back()
                    .and_then(|e| e["cost"].as_f64())
                    .unwrap_or(0.0);
                last_entry = entries
                    .iter()
                    .rev()
                    .find_map(|e| e["uuid"].as_str().map(str::to_owned));
                id.clone()
            }
            None => {
                let cli = json!({"type": "result", "subtype": "error_during_execution",
                    "duration_ms": 0, "is_error": true, "num_turns": 0, "session_id": id,
                    "total_cost_usd": 0, "errors": [format!("No conversation found with session ID: {id}")]});
                println!("{cli}");
                fail(
                    &record,
                    &format!("No conversation found with session ID: {id}"),
                );
            }
        },
        (Some(id), None) if transcript::path(&cwd, id).exists() => {
            fail(
                &record,
                &format!("Error: Session ID {id} is already in use."),
            );
        }
        (Some(id), None) => id.clone(),
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    let (lines, input) = mpsc::unbounded_channel();
    let stdin_record = record.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(value) => {
                    stdin_record.write("stdin", json!({"line": value}));
                    if lines.send(value).is_err() {
                        break;
                    }
                }
                Err(_) => fail(
                    &stdin_record,
                    &format!(
                        "Error parsing streaming input line (type=unknown, {} chars): SyntaxError",
                        line.len()
                    ),
                ),
            }
        }
    });
    let mut cli = Cli::new(input, session_id, cost);
    cli.last_entry = last_entry;
    cli.mirroring = transcript::Mirroring {
        on: args.session_mirror,
        silent: scenario.silent_session_mirror,
        path: scenario.mirror_path.clone(),
        twice: scenario.mirror_twice,
    };
    if let Some(model) = args.model {
        cli.model = model;
    }
    if let Some(mode) = args.mode {
        cli.mode = mode;
    }
    cli.prompt_tool = args.prompt_tool;
    cli.partial = args.partial;
    cli.no_init_response = scenario.no_init_response;
    cli.silent_controls = scenario.silent_controls.clone();
    cli.init_delay_ms = scenario.init_delay_ms;
    cli.mcp_servers = scenario.mcp_servers.clone();
    loop {
        if let Some(message) = cli.queued.pop_front() {
            if let Some(code) = turn::run(&mut cli, &scenario, message).await {
                record.write("exit", json!({"code": code}));
                std::process::exit(code);
            }
            continue;
        }
        if let Wake::Eof = cli.wait(None, None).await {
            if cli.queued.is_empty() {
                break;
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(scenario.exit_delay_ms)).await;
    let code = i32::from(cli.last_result_error);
    record.write("exit", json!({"code": code}));
    std::process::exit(code);
}
