// Session page: the live timeline from `GET /sessions/{id}/stream` (resume from any event id,
// reconnect, disconnect), replies to prompts, a user message, interrupt and delete, all through
// `POST /sessions/{id}/input` and `DELETE /sessions/{id}`. The stored history
// (`GET /sessions/{id}/events`) serves what the stream cannot: someone else's session for an
// admin (streams stay with the owner), or a read-only look at a closed one.

import * as api from "./api.js";
import { h, fill, time } from "./dom.js";
import { openStream } from "./sse.js";
import { Timeline } from "./timeline.js";

const META_MS = 5000;

export function mount(container, ctx, id) {
  const path = `/sessions/${encodeURIComponent(id)}`;
  const meta = h("p", { class: "meta", id: "session-meta" });
  const streamStatus = h("span", { id: "stream-status", class: "badge" }, "idle");
  const from = h("input", { id: "resume-from", inputmode: "numeric", placeholder: "event id", title: "empty: from the start", size: 10 });
  const connect = h("button", { type: "button", id: "connect" }, "Connect");
  const disconnect = h("button", { type: "button", id: "disconnect" }, "Disconnect");
  const history = h("button", { type: "button", id: "history" }, "Load stored history");
  const interrupt = h("button", { type: "button", id: "interrupt" }, "Interrupt");
  const remove = h("button", { type: "button", id: "delete", class: "danger" }, "Delete session");
  const notice = h("p", { id: "session-notice", class: "notice", role: "status" });
  const message = h("textarea", { id: "message", rows: 2, placeholder: "message to the agent" });
  const composer = h("form", { id: "composer", class: "composer" }, message, h("button", { type: "submit", id: "send" }, "Send"));

  const reply = (body) => api.input(id, body);
  const timeline = new Timeline(reply, (eventId) => {
    from.value = eventId;
    from.focus();
  });

  container.append(
    h("h1", {}, "Session ", h("span", { class: "mono" }, id)),
    meta,
    h(
      "section",
      { class: "card toolbar" },
      h("span", {}, "stream: "),
      streamStatus,
      h("label", { class: "inline" }, "resume after ", from),
      connect,
      disconnect,
      history,
      h("span", { class: "spacer" }),
      interrupt,
      remove,
    ),
    notice,
    timeline.el,
    composer,
  );

  let stream = null;
  let stopped = false;

  function setStatus(text) {
    streamStatus.textContent = text;
    streamStatus.dataset.state = text.split(/[ ;(]/)[0];
  }

  /** (Re)connects from `after` (an event id; empty: the start) with a fresh timeline. */
  function live(after) {
    stream?.stop();
    timeline.reset();
    notice.textContent = "";
    stream = openStream(id, after || null, {
      event: (ev) => timeline.add(ev),
      status: setStatus,
      end: (error) => {
        if (stopped) return;
        if (!error) return setStatus(timeline.lastId ? `stopped after id ${timeline.lastId}` : "stopped");
        setStatus("failed");
        if (error.status === 404 && ctx.admin) {
          notice.textContent = "Streaming is for the session's owner; showing the stored history (read-only).";
          loadHistory(after);
        } else {
          notice.textContent = `stream: ${error.message}`;
        }
      },
    });
  }

  /** The stored events after `after`, page by page, into a fresh timeline. */
  async function loadHistory(after) {
    stream?.stop();
    stream = null;
    timeline.reset();
    setStatus("history");
    let cursor = null;
    try {
      do {
        const page = await api.get(`${path}/events`, cursor ? { cursor, limit: 500 } : { after: after || undefined, limit: 500 });
        if (stopped) return;
        for (const row of page.events) timeline.add({ id: String(row.id), event: row.event, data: row.data });
        cursor = page.next_cursor;
      } while (cursor);
      setStatus(`history through id ${timeline.lastId ?? "—"}`);
    } catch (e) {
      notice.textContent = `history: ${e.message}`;
    }
  }

  async function refreshMeta() {
    try {
      const s = await api.get(path);
      if (stopped) return;
      fill(
        meta,
        h("span", { class: `badge ${s.status}`, id: "session-status" }, s.status),
        ` principal ${s.principal} · owner ${s.owner_host_name ?? "—"} · turns ${s.turns} · cost $${s.total_cost_usd.toFixed(4)} · last event ${s.last_event_id} · last activity `,
        time(s.updated_at),
      );
    } catch (e) {
      if (!stopped) fill(meta, e.status === 404 ? "no such session (or not yours)" : e.message);
    }
  }

  async function act(what, fn) {
    notice.textContent = "";
    try {
      await fn();
      return true;
    } catch (e) {
      notice.textContent = `${what}: ${e.message}`;
      return false;
    }
  }

  connect.addEventListener("click", () => live(from.value.trim()));
  disconnect.addEventListener("click", () => {
    stream?.stop();
    stream = null;
  });
  history.addEventListener("click", () => loadHistory(from.value.trim()));
  interrupt.addEventListener("click", () => act("interrupt", () => reply({ type: "interrupt" })));
  remove.addEventListener("click", async () => {
    // A second click confirms: `confirm()` would be a dialog, and the console opens none.
    if (remove.dataset.armed !== "yes") {
      remove.dataset.armed = "yes";
      remove.textContent = "Really delete?";
      return;
    }
    remove.dataset.armed = "";
    remove.textContent = "Delete session";
    if (await act("delete", () => api.del(path))) refreshMeta();
  });
  composer.addEventListener("submit", async (e) => {
    e.preventDefault();
    const content = message.value;
    if (!content.trim()) return;
    const line = timeline.local("user", content);
    if (await act("send", () => reply({ type: "user_message", content }))) message.value = "";
    else line.classList.add("failed");
  });
  message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) composer.requestSubmit();
  });

  live(null);
  refreshMeta();
  const timer = setInterval(refreshMeta, META_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    stream?.stop();
  };
}
