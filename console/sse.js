// The session stream, read with fetch so it can carry `Authorization` (EventSource cannot send
// headers). Like the published JS client: resumes with `Last-Event-ID` from the last id seen,
// reconnects with backoff after a dropped connection or a 5xx, stops after `done`, on a 4xx
// (412: the id is gone or ahead; 404: not yours) or when `stop()` is called.

import { authHeaders, failure } from "./api.js";

/** Parses SSE text; returns complete events and keeps the partial tail in `state`. */
export function feed(state, chunk) {
  state.buffer += chunk;
  const out = [];
  let nl;
  while ((nl = state.buffer.indexOf("\n")) !== -1) {
    let line = state.buffer.slice(0, nl);
    state.buffer = state.buffer.slice(nl + 1);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") {
      const c = state.current;
      if (c.data.length || c.event || c.id) out.push({ id: c.id, event: c.event ?? "message", data: c.data.join("\n") });
      state.current = { data: [] };
      continue;
    }
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") state.current.data.push(value);
    else if (name === "event") state.current.event = value;
    else if (name === "id") state.current.id = value;
  }
  return out;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * Streams `/sessions/{id}/stream` from after `from` (an event id, or null for the start).
 * `on.event({id, event, data})` for each event (data parsed), `on.status(text)` for the
 * connection's state, `on.end(error|null)` once it stops for good. Returns `{stop()}`.
 */
export function openStream(id, from, on) {
  const controller = new AbortController();
  const { signal } = controller;
  let last = from ?? null;
  (async () => {
    let backoff = 250;
    for (;;) {
      if (signal.aborted) return on.end(null);
      const headers = authHeaders({ accept: "text/event-stream" });
      if (last !== null && last !== "") headers["last-event-id"] = String(last);
      let res;
      try {
        on.status(last ? `connecting (after id ${last})` : "connecting");
        res = await fetch(`/sessions/${encodeURIComponent(id)}/stream`, { headers, signal, cache: "no-store" });
      } catch {
        if (signal.aborted) return on.end(null);
        on.status(`disconnected; retrying in ${backoff} ms`);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 8000);
        continue;
      }
      if (!res.ok) {
        const error = await failure(res);
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) return on.end(error);
        on.status(`${error.message}; retrying in ${backoff} ms`);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 8000);
        continue;
      }
      backoff = 250;
      on.status("live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const state = { buffer: "", current: { data: [] } };
      let done = false;
      try {
        for (;;) {
          const { value, done: ended } = await reader.read();
          if (ended) break;
          for (const ev of feed(state, value)) {
            if (ev.id !== undefined) last = ev.id;
            let data;
            try {
              data = JSON.parse(ev.data);
            } catch {
              data = { raw: ev.data };
            }
            try {
              on.event({ id: ev.id, event: ev.event, data });
            } catch (e) {
              // One event the page cannot show must not stall the stream (nor replay forever).
              console.error(`rendering event ${ev.id}:`, e);
            }
            if (ev.event === "done") done = true;
          }
        }
      } catch {
        // connection dropped mid-stream (or stop()): resume below
      }
      if (signal.aborted) return on.end(null);
      if (done) return on.end(null);
      on.status(`stream ended; resuming after id ${last ?? "start"}`);
      await sleep(backoff, signal);
    }
  })();
  return {
    stop: () => controller.abort(),
    lastId: () => last,
  };
}
