// Sessions page: `GET /sessions` with its filters and keyset pages, polled every few seconds
// so status, turns and cost move while you watch, and a form that creates a session
// (`POST /sessions`). A non-admin sees their own sessions only: the API scopes the list.

import * as api from "./api.js";
import { h, fill, field, select, time, values } from "./dom.js";

const POLL_MS = 3000;

export function mount(container, ctx) {
  const filters = h(
    "form",
    { class: "filters", id: "session-filters" },
    field("Status", select("status", [["", "any"], ["active"], ["dormant"], ["closed"]])),
    ctx.admin ? field("Principal", h("input", { name: "principal", placeholder: "any" })) : null,
    field("Since", h("input", { name: "since", placeholder: "1h, 7d or RFC 3339" })),
    h("button", { type: "submit" }, "Apply"),
  );
  const create = h(
    "form",
    { class: "filters", id: "new-session" },
    field("Fixture", h("input", { name: "fixture", placeholder: "server default" })),
    field("Model", h("input", { name: "model", placeholder: "server default" })),
    h("button", { type: "submit", id: "create-session" }, "New session"),
  );
  const status = h("p", { class: "muted", id: "sessions-status" });
  const body = h("tbody", { id: "sessions-rows" });
  const table = h(
    "table",
    { class: "rows" },
    h("thead", {}, h("tr", {}, ["session", "status", "principal", "owner host", "turns", "cost (USD)", "last activity", "created"].map((c) => h("th", {}, c)))),
    body,
  );
  const first = h("button", { type: "button", id: "sessions-first" }, "First page");
  const next = h("button", { type: "button", id: "sessions-next" }, "Next page");
  container.append(
    h("h1", {}, "Sessions"),
    h("section", { class: "card" }, create),
    h("section", { class: "card" }, filters),
    table,
    h("div", { class: "pager" }, first, next, status),
  );

  // The page on screen is `cursors.at(-1)` (null: the first); polling reloads that page.
  let cursors = [null];
  let nextCursor = null;
  let query = {};
  let stopped = false;

  async function load() {
    try {
      const page = await api.get("/sessions", { ...query, cursor: cursors.at(-1), limit: 25 });
      if (stopped) return;
      nextCursor = page.next_cursor;
      next.disabled = !nextCursor;
      first.disabled = cursors.length === 1;
      fill(body, page.sessions.map(row));
      if (!page.sessions.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no sessions")));
      status.textContent = `page ${cursors.length} · refreshed ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (!stopped) status.textContent = e.message;
    }
  }

  function row(s) {
    return h(
      "tr",
      { "data-session-id": s.id },
      h("td", {}, h("a", { href: `#/session/${s.id}`, class: "mono" }, s.id)),
      h("td", {}, h("span", { class: `badge ${s.status}` }, s.status)),
      h("td", {}, s.principal),
      h("td", {}, s.owner_host_name ?? "—"),
      h("td", { class: "num" }, String(s.turns)),
      h("td", { class: "num" }, s.total_cost_usd.toFixed(4)),
      h("td", {}, time(s.updated_at)),
      h("td", {}, time(s.created_at)),
    );
  }

  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    query = values(filters);
    cursors = [null];
    load();
  });
  first.addEventListener("click", () => ((cursors = [null]), load()));
  next.addEventListener("click", () => nextCursor && (cursors.push(nextCursor), load()));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const { session_id } = await api.post("/sessions", values(create));
      ctx.navigate(`#/session/${session_id}`);
    } catch (err) {
      status.textContent = `new session: ${err.message}`;
    }
  });

  load();
  const timer = setInterval(load, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
