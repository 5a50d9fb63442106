//! The three tasks around the CLI's pipes (docs/claude-cli.md §8).
//!
//! - the **reader** turns stdout into frames for the driver; garbage lines are logged and
//!   skipped, an over-long one is reported (the driver tells the client);
//! - the **stderr drainer** reads stderr continuously (a full pipe would block the CLI), logs
//!   it and keeps a bounded tail for error messages;
//! - the **writer** is the only owner of stdin, so lines never interleave; dropping its sender
//!   closes stdin, which asks the CLI to finish and exit.

use super::protocol::{self, Line};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// What the reader hands the driver.
#[derive(Debug)]
pub enum Incoming {
    Frame(Value),
    TooLong(usize),
}

pub fn reader(
    stdout: ChildStdout,
    max_line: usize,
    session_id: Uuid,
    frames: mpsc::Sender<Incoming>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stdout = BufReader::with_capacity(64 * 1024, stdout);
        let mut buf = Vec::new();
        loop {
            let incoming = match protocol::read_line(&mut stdout, &mut buf, max_line).await {
                Ok(Some(Line::Frame(frame))) => Incoming::Frame(frame),
                Ok(Some(Line::TooLong(len))) => Incoming::TooLong(len),
                Ok(Some(Line::Garbage(text))) => {
                    if !text.is_empty() {
                        tracing::debug!(%session_id, line = %text, "claude: non-JSON stdout line skipped");
                    }
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%session_id, error = %e, "claude: reading stdout failed");
                    break;
                }
            };
            if frames.send(incoming).await.is_err() {
                break;
            }
        }
    })
}

/// The last lines the CLI wrote on stderr (at most [`TAIL_LINES`] lines of [`TAIL_LINE_BYTES`]).
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

pub const TAIL_LINES: usize = 20;
pub const TAIL_LINE_BYTES: usize = 500;

impl StderrTail {
    fn push(&self, line: String) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// The tail as one string, lines joined with ` | `; empty when there was none.
    pub fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

pub fn stderr_drainer(stderr: ChildStderr, session_id: Uuid) -> (StderrTail, JoinHandle<()>) {
    let tail = StderrTail::default();
    let keep = tail.clone();
    let task = tokio::spawn(async move {
        let mut stderr = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Bounded like stdout: a line without a newline must not grow without end.
            match (&mut stderr)
                .take(64 * 1024)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end();
            if text.is_empty() {
                continue;
            }
            tracing::debug!(%session_id, line = %text, "claude stderr");
            keep.push(text.chars().take(TAIL_LINE_BYTES).collect());
        }
    });
    (tail, task)
}

pub fn writer(mut stdin: ChildStdin, session_id: Uuid) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let written = async {
                stdin.write_all(line.as_bytes()).await?;
                stdin.flush().await
            };
            if let Err(e) = written.await {
                // EPIPE: the CLI is gone; the reader sees EOF and the driver reports it.
                tracing::debug!(%session_id, error = %e, "claude: writing stdin failed");
                break;
            }
        }
        // Dropping stdin here is the EOF that asks the CLI to finish.
    });
    tx
}
