// Audit page (admins): `GET /audit/events` and `GET /audit/inputs` with every filter the API
// has, keyset pages loaded one after another ("Load more"), a tool call's whole story by
// correlation id (its events and the replies to it, merged in time order: request →
// decision → result, and who decided), and export of what is loaded as CSV or JSON.

import * as api from "./api.js";
import { h, fill, field, select, time, values } from "./dom.js";
import { download } from "./export.js";

const EVENTS = ["session_ready", "message_delta", "message_complete", "tool_use", "tool_result", "permission_request", "permission_resolved", "ask_user_question", "question_resolved", "hook_decision_request", "result", "error", "mcp_status_change", "done"];
const INPUT_TYPES = ["user_message", "interrupt", "permission_response", "question_response", "set_permission_mode", "set_model", "stop_task"];
const TIME_HINT = "15m, 1d or RFC 3339";

const input = (name, placeholder = "") => h("input", { name, placeholder });
const compact = (v) => {
  const s = JSON.stringify(v);
  return s.length > 160 ? `${s.slice(0, 160)}…` : s;
};

export function mount(container) {
  const views = {
    events: {
      title: "Events",
      path: "/audit/events",
      key: "events",
      form: [
        field("Session id", input("session_id")),
        field("Event", select("event", [["", "any"], ...EVENTS.map((e) => [e])])),
        field("Tool name", input("tool_name")),
        field("Correlation id", input("correlation_id")),
        field("Since", input("since", TIME_HINT)),
        field("Until", input("until", TIME_HINT)),
        field("Data contains (JSON)", input("contains", '{"behavior":"deny"}')),
      ],
      columns: ["time", "session", "id", "event", "correlation", "data"],
      row: (r) => [time(r.created_at), sessionLink(r.session_id), String(r.id), r.event, storyLink(r.data?.correlation_id ?? r.data?.tool_use_id, r.session_id), h("code", {}, compact(r.data))],
    },
    inputs: {
      title: "Inputs",
      path: "/audit/inputs",
      key: "inputs",
      form: [
        field("Session id", input("session_id")),
        field("Principal", input("principal")),
        field("Type", select("type", [["", "any"], ...INPUT_TYPES.map((t) => [t])])),
        field("Status", select("status", [["", "any"], ["204"], ["409"]])),
        field("Correlation id", input("correlation_id")),
        field("Since", input("since", TIME_HINT)),
        field("Until", input("until", TIME_HINT)),
      ],
      columns: ["time", "session", "id", "type", "principal", "status", "correlation", "body"],
      row: (r) => [time(r.received_at), sessionLink(r.session_id), String(r.id), r.type, r.principal, String(r.status), storyLink(r.correlation_id, r.session_id), h("code", {}, compact(r.body))],
    },
    story: {
      title: "Tool call story",
      form: [field("Correlation id", input("correlation_id", "tu_1")), field("Session id (optional)", input("session_id"))],
    },
  };

  const tabs = h("nav", { class: "tabs" });
  const panel = h("section", { class: "card" });
  const status = h("p", { class: "muted", id: "audit-status" });
  const results = h("div", { id: "audit-results" });
  container.append(h("h1", {}, "Audit"), tabs, panel, status, results);

  let current = null; // {view, name, query, rows, next}
  let stopped = false;

  function sessionLink(sid) {
    return h("a", { href: `#/session/${sid}`, class: "mono", title: sid }, String(sid).slice(0, 8));
  }

  function storyLink(cid, sid) {
    if (!cid) return "";
    const a = h("a", { href: "#/audit", class: "mono story-link" }, String(cid));
    a.addEventListener("click", (e) => {
      e.preventDefault();
      show("story", { correlation_id: String(cid), session_id: sid });
    });
    return a;
  }

  function show(name, preset = {}) {
    for (const b of tabs.children) b.classList.toggle("current", b.dataset.view === name);
    const view = views[name];
    const form = h("form", { class: "filters", id: `audit-${name}-form` }, view.form, h("button", { type: "submit" }, name === "story" ? "Show story" : "Search"));
    for (const [k, v] of Object.entries(preset)) {
      const el = form.querySelector(`[name="${k}"]`);
      if (el) el.value = v;
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      run(name, values(form));
    });
    fill(panel, form);
    fill(results);
    status.textContent = "";
    current = null;
    if (Object.keys(preset).length) run(name, values(form));
  }

  async function run(name, query) {
    status.textContent = "loading…";
    try {
      if (name === "story") return await story(query);
      const view = views[name];
      const page = await api.get(view.path, { ...query, limit: 200 });
      if (stopped) return;
      current = { view, name, query, rows: page[view.key], next: page.next_cursor };
      render();
    } catch (e) {
      if (!stopped) status.textContent = e.message;
    }
  }

  async function more() {
    const { view, query, next } = current;
    try {
      const page = await api.get(view.path, { ...query, cursor: next, limit: 200 });
      current.rows.push(...page[view.key]);
      current.next = page.next_cursor;
      render();
    } catch (e) {
      status.textContent = e.message;
    }
  }

  function exportButtons(name, rows) {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    return ["csv", "json"].map((f) => {
      const b = h("button", { type: "button", class: `export-${f}` }, `Export ${f.toUpperCase()}`);
      b.addEventListener("click", () => download(rows, `audit-${name}-${stamp}`, f));
      return b;
    });
  }

  function render() {
    const { view, name, rows, next } = current;
    const loadMore = h("button", { type: "button", id: "audit-more", disabled: !next }, next ? "Load more" : "No more rows");
    loadMore.addEventListener("click", more);
    status.textContent = `${rows.length} rows loaded${next ? " (more available)" : ""}`;
    fill(
      results,
      h("div", { class: "pager" }, exportButtons(name, rows), loadMore),
      h("table", { class: "rows", id: "audit-table" }, h("thead", {}, h("tr", {}, view.columns.map((c) => h("th", {}, c)))), h("tbody", {}, rows.map((r) => h("tr", {}, view.row(r).map((c) => h("td", {}, c)))))),
    );
  }

  /** Every page of both lists for one correlation id, merged in time order. */
  async function story(query) {
    if (!query.correlation_id) {
      status.textContent = "a correlation id is needed";
      return;
    }
    const all = async (path, key) => {
      const rows = [];
      let cursor = null;
      do {
        const page = await api.get(path, { ...query, cursor, limit: 1000 });
        rows.push(...page[key]);
        cursor = page.next_cursor;
      } while (cursor && rows.length < 10_000);
      return rows;
    };
    const [events, inputs] = await Promise.all([all("/audit/events", "events"), all("/audit/inputs", "inputs")]);
    if (stopped) return;
    const rows = [
      ...events.map((e) => ({ at: e.created_at, kind: "event", name: e.event, session_id: e.session_id, id: e.id, principal: null, status: null, data: e.data })),
      ...inputs.map((i) => ({ at: i.received_at, kind: "input", name: i.type, session_id: i.session_id, id: i.id, principal: i.principal, status: i.status, data: i.body })),
    ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.kind === b.kind ? a.id - b.id : a.kind === "event" ? -1 : 1));
    const winner = inputs.find((i) => i.status === 204 && i.type !== "user_message");
    const late = inputs.filter((i) => i.status === 409).length;
    const summary = winner
      ? `decided ${winner.body?.behavior ?? "(answer)"} by ${winner.principal} at ${winner.received_at}${late ? `; ${late} later repl${late === 1 ? "y" : "ies"} refused (409)` : ""}`
      : "no accepted decision recorded";
    status.textContent = `${rows.length} rows for ${query.correlation_id}`;
    current = { name: "story", rows };
    fill(
      results,
      h("p", { id: "story-summary", class: "summary" }, summary),
      h("div", { class: "pager" }, exportButtons("story", rows)),
      h(
        "ol",
        { class: "story", id: "story" },
        rows.map((r) =>
          h(
            "li",
            { class: `story-${r.kind}`, "data-kind": r.kind, "data-name": r.name, "data-status": r.status ?? "" },
            time(r.at),
            h("span", { class: "badge" }, r.kind),
            h("strong", {}, ` ${r.name} `),
            r.kind === "input" ? h("span", {}, `by ${r.principal} → ${r.status}`) : h("span", { class: "muted" }, `#${r.id}`),
            " ",
            sessionLink(r.session_id),
            h("code", { class: "line" }, JSON.stringify(r.data)),
          ),
        ),
      ),
    );
  }

  for (const name of ["events", "inputs", "story"]) {
    const b = h("button", { type: "button", "data-view": name, id: `tab-${name}` }, views[name].title);
    b.addEventListener("click", () => show(name));
    tabs.append(b);
  }
  show("events");
  return () => {
    stopped = true;
  };
}
