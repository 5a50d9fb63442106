// The published React hook (@agent-webkit/react, pinned in package-lock.json) rendered in Node by
// react-test-renderer against a running server (AGENT_WEBKIT_URL, AGENT_WEBKIT_TOKEN): a turn
// that asks for a permission, approved through the hook, then a question answered through it.
// Prints one JSON line; exits non-zero on the first mismatch. tests/it/js_client.rs runs this.

import React from "react";
import TestRenderer, { act } from "react-test-renderer";
import { useAgentSession } from "@agent-webkit/react";
import assert from "node:assert/strict";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const baseUrl = process.env.AGENT_WEBKIT_URL;
const token = process.env.AGENT_WEBKIT_TOKEN;
const WAIT_MS = 15000;

/** Mounts a component that keeps the hook's latest return value in `probe.current`. */
async function mount(options) {
  const probe = { current: null };
  function Probe() {
    probe.current = useAgentSession(options);
    return null;
  }
  let renderer;
  await act(async () => {
    renderer = TestRenderer.create(React.createElement(Probe));
  });
  return { probe, renderer };
}

/** Lets the hook's effects and stream run until `check(state)` holds. */
async function until(probe, what, check) {
  const deadline = Date.now() + WAIT_MS;
  while (!check(probe.current)) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(probe.current)}`);
    }
    await act(() => new Promise((r) => setTimeout(r, 20)));
  }
  return probe.current;
}

const texts = (state) =>
  state.messages
    .filter((m) => m.kind === "assistant")
    .flatMap((m) => m.content.filter((b) => b.type === "text").map((b) => b.text));

async function permissionTurn() {
  const { probe, renderer } = await mount({ baseUrl, token, create: { fixture: "read_allow" } });
  await until(probe, "a session", (s) => s.sessionId);
  await act(() => probe.current.send("read the readme"));
  const asking = await until(probe, "the permission", (s) => s.status === "awaiting_permission");
  assert.equal(asking.pendingPermission.tool_name, "Read");
  assert.deepEqual(asking.pendingPermission.input, { path: "./README.md" });
  await act(() => probe.current.approve(asking.pendingPermission.correlation_id));
  // Not `status === "idle"`: the hook clears its pending permission (and sets "streaming")
  // when approve()'s 204 is processed, which on loopback can come after the turn's `result`
  // has already set "idle" — a race in the hook itself, not in what the server sends.
  const done = await until(
    probe,
    "the answer",
    (s) => s.pendingPermission === null && texts(s).length > 0 && s.totalCostUsd > 0,
  );
  assert.deepEqual(texts(done), ["First line: first line"]);
  assert.ok(done.messages.some((m) => m.kind === "tool_result" && m.output === "first line"));
  assert.equal(done.lastError, null);
  await act(() => probe.current.close());
  renderer.unmount();
  return done.messages.map((m) => m.kind);
}

async function questionTurn() {
  const { probe, renderer } = await mount({
    baseUrl,
    token,
    create: { fixture: "ask_user_question" },
  });
  await until(probe, "a session", (s) => s.sessionId);
  await act(() => probe.current.send("ask me"));
  const asking = await until(probe, "the question", (s) => s.status === "awaiting_question");
  // The hook exposes the tool's input object as the original server gives it (issue 11).
  assert.deepEqual(asking.pendingQuestion.questions, {
    questions: [{ question: "Pick a color", options: [{ label: "red" }, { label: "blue" }] }],
  });
  await act(() =>
    probe.current.answer(asking.pendingQuestion.correlation_id, { "Pick a color": "blue" }),
  );
  const done = await until(
    probe,
    "the answer",
    (s) => s.pendingQuestion === null && texts(s).at(-1) === "You picked a color.",
  );
  assert.equal(texts(done).at(-1), "You picked a color.");
  await act(() => probe.current.close());
  renderer.unmount();
  return done.messages.map((m) => m.kind);
}

try {
  const permission = await permissionTurn();
  const question = await questionTurn();
  console.log(JSON.stringify({ ok: true, seen: { permission, question } }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e) }));
  process.exit(1);
}
