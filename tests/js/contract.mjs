// The published JS client (@agent-webkit/core, pinned in package-lock.json) used exactly as its
// README shows, against a running server: AGENT_WEBKIT_URL and AGENT_WEBKIT_TOKEN. Each check
// throws on a mismatch; the script prints one JSON line of what it saw and exits non-zero on the
// first failure. tests/it/js_client.rs starts the server and runs this.

import { createAgentClient, TransportError } from "@agent-webkit/core";
import assert from "node:assert/strict";

const baseUrl = process.env.AGENT_WEBKIT_URL;
const token = process.env.AGENT_WEBKIT_TOKEN;
const client = createAgentClient({ baseUrl, token });
const seen = {};

/** DELETE through another handle: `close()` on the iterating one would also stop its stream,
 * and these checks want to see the `done` that the DELETE commits. */
const remove = (session) => client.attachSession(session.id).close();

/** Every event of one iteration, reacting to each with `on(event, session)`. */
async function drive(session, on = async () => {}) {
  const events = [];
  for await (const ev of session.events()) {
    events.push(ev);
    await on(ev, session);
  }
  return events;
}

function assertContiguous(events, from = 1) {
  assert.deepEqual(
    events.map((e) => e.id),
    events.map((_, i) => from + i),
    "ids are contiguous",
  );
}

async function plainTurn() {
  const session = await client.createSession({ fixture: "plain_qa" });
  assert.equal(session.protocolVersion, "1.0");
  const events = await drive(session, async (ev, s) => {
    if (ev.event === "session_ready") await s.send("hello");
    if (ev.event === "result") await remove(s);
  });
  assertContiguous(events);
  const names = events.map((e) => e.event);
  assert.equal(names[0], "session_ready");
  assert.ok(names.includes("message_complete"), names.join());
  assert.equal(names.at(-1), "done");
  const text = events.find((e) => e.event === "message_complete").data.message.content[0].text;
  assert.equal(text, "hello world");
  seen.plain = names;
  return { id: session.id, last: events.at(-1).id };
}

async function permissionFirstReplyWins() {
  const session = await client.createSession({ fixture: "read_allow" });
  let conflict;
  const events = await drive(session, async (ev, s) => {
    if (ev.event === "session_ready") await s.send("read the readme");
    if (ev.event === "permission_request") {
      await s.approve(ev.data.correlation_id);
      conflict = await s.approve(ev.data.correlation_id).then(
        () => null,
        (e) => e,
      );
    }
    if (ev.event === "result") await remove(s);
  });
  assertContiguous(events);
  assert.ok(conflict instanceof TransportError, "the second reply is refused");
  assert.equal(conflict.status, 409);
  const names = events.map((e) => e.event);
  assert.ok(names.indexOf("permission_request") < names.indexOf("tool_result"), names.join());
  seen.permission = names;
}

async function question() {
  const session = await client.createSession({ fixture: "ask_user_question" });
  const events = await drive(session, async (ev, s) => {
    if (ev.event === "session_ready") await s.send("ask me");
    if (ev.event === "ask_user_question") {
      // The tool's input object, whole, as the original sends it (issue 11).
      assert.ok(Array.isArray(ev.data.questions.questions), JSON.stringify(ev.data));
      assert.equal(ev.data.questions.questions[0].question, "Pick a color");
      await s.answer(ev.data.correlation_id, { "Pick a color": "blue" });
    }
    if (ev.event === "result") await remove(s);
  });
  assertContiguous(events);
  seen.question = events.map((e) => e.event);
  assert.ok(seen.question.includes("ask_user_question"));
}

async function resumeAndExpiry({ id, last }) {
  // Attach to the closed session from id 2: the rest of its history, through `done`.
  const resumed = await drive(client.attachSession(id, { resumeFromEventId: "2" }));
  assertContiguous(resumed, 3);
  assert.equal(resumed.at(-1).id, last);
  assert.equal(resumed.at(-1).event, "done");
  // An id the session never reached: the client surfaces the 412 as a TransportError.
  const ahead = client.attachSession(id, { resumeFromEventId: String(last + 100) });
  const error = await drive(ahead).then(
    () => null,
    (e) => e,
  );
  assert.ok(error instanceof TransportError, "resume past the end fails");
  assert.equal(error.status, 412);
  seen.resumed = resumed.length;
}

async function detachAndAttach() {
  // A UI unmounts mid-turn (detach), remounts, and resumes from the last id it saw.
  const session = await client.createSession({ fixture: "plain_qa" });
  const first = [];
  for await (const ev of session.events()) {
    first.push(ev);
    if (ev.event === "session_ready") await session.send("hello");
    if (ev.event === "message_complete") {
      session.detach();
      break;
    }
  }
  const again = client.attachSession(session.id, { resumeFromEventId: session.lastEventId });
  const rest = await drive(again, async (ev, s) => {
    if (ev.event === "result") await remove(s);
  });
  assertContiguous([...first, ...rest]);
  assert.equal(rest.at(-1).event, "done");
  seen.detach = [first.length, rest.length];
}

try {
  const closed = await plainTurn();
  await permissionFirstReplyWins();
  await question();
  await resumeAndExpiry(closed);
  await detachAndAttach();
  console.log(JSON.stringify({ ok: true, seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, seen, error: String(e?.stack ?? e) }));
  process.exit(1);
}
