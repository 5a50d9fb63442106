// A session's events as a timeline: assistant text assembled from `message_delta`s and then
// replaced by its `message_complete`, tool calls with their results, and the prompts a person
// answers (permission, hook decision, question). Prompts carry their own reply controls; a
// reply the server refuses with 409 (another tab or person won) says "answered elsewhere",
// and `permission_resolved` / `question_resolved` clear a prompt answered anywhere.
// Every value from an event is shown as text (see dom.js).

import { h, json } from "./dom.js";

const text = (content) =>
  (Array.isArray(content) ? content : [])
    .filter((b) => b && b.type === "text" && typeof b.text === "string")
    .map((b) => b.text)
    .join("");

export class Timeline {
  /** `reply(body)` posts an input and rejects with the ApiError; `pick(id)` is called when an
   * event id is clicked (to resume from it). */
  constructor(reply, pick) {
    this.reply = reply;
    this.pick = pick;
    this.el = h("ol", { id: "timeline", class: "timeline", "aria-live": "polite" });
    this.reset();
  }

  reset() {
    this.messages = new Map();
    this.tools = new Map();
    this.prompts = new Map();
    this.lastId = null;
    this.el.replaceChildren();
  }

  /** One event `{id, event, data}` from the stream or the stored history. */
  add({ id, event, data }) {
    if (id !== undefined && id !== null) this.lastId = String(id);
    const d = data ?? {};
    switch (event) {
      case "message_delta":
        return this.delta(id, d);
      case "message_complete":
        return this.complete(id, d);
      case "tool_use":
        return this.toolUse(id, d);
      case "tool_result":
        return this.toolResult(id, d);
      case "permission_request":
        return this.permission(id, d, `Permission: ${d.tool_name ?? "tool"}`, d.input, d.context);
      case "hook_decision_request":
        return this.permission(id, d, `Hook decision: ${d.hook_event ?? "hook"}`, d.hook_input, null);
      case "ask_user_question":
        return this.question(id, d);
      case "permission_resolved":
      case "question_resolved":
        return this.resolved(id, event, d);
      case "session_ready":
        return this.sys(id, event, `session ready (protocol ${d.protocol_version ?? "?"})`);
      case "result": {
        const cost = typeof d.total_cost_usd === "number" ? ` · total cost $${d.total_cost_usd}` : "";
        return this.sys(id, event, `turn ended: ${d.subtype ?? "?"}${cost}`);
      }
      case "error":
        return this.sys(id, event, `error ${d.code ?? ""}: ${d.message ?? ""}`, "error");
      case "done":
        return this.sys(id, event, "session closed");
      default:
        return this.sys(id, event, `${event} ${JSON.stringify(d)}`);
    }
  }

  /** A line the console itself adds (a sent message, a note); not an event. */
  local(kind, content) {
    return this.push(h("li", { class: `entry ${kind} local` }, h("span", { class: "who" }, kind === "user" ? "you" : "note"), h("p", { class: "text" }, content)));
  }

  push(el) {
    this.el.append(el);
    el.scrollIntoView?.({ block: "nearest" });
    return el;
  }

  entry(id, event, cls, ...children) {
    const label = h("button", { type: "button", class: "event-id", title: "resume after this event" }, id ? `#${id}` : "");
    label.addEventListener("click", () => id && this.pick(id));
    return this.push(h("li", { class: `entry ${cls}`, "data-event-id": id ?? "", "data-event": event }, label, ...children));
  }

  sys(id, event, line, cls = "") {
    this.entry(id, event, `sys ${cls}`, h("span", { class: "what" }, line));
  }

  delta(id, d) {
    let m = this.messages.get(d.message_id);
    if (!m) {
      const p = h("p", { class: "text" });
      const li = this.entry(id, "message_delta", "assistant streaming", h("span", { class: "who" }, "assistant"), p);
      m = { li, p, buffer: "" };
      this.messages.set(d.message_id, m);
    }
    const piece = d.delta?.text ?? d.delta?.partial_json ?? "";
    m.buffer += typeof piece === "string" ? piece : "";
    m.p.textContent = m.buffer;
  }

  complete(id, d) {
    const full = text(d.message?.content);
    const m = this.messages.get(d.message_id);
    if (m) {
      m.p.textContent = full || m.buffer;
      m.li.classList.remove("streaming");
      m.li.dataset.event = "message_complete";
      return;
    }
    if (!full) return; // tool calls only: shown by their tool_use events
    const p = h("p", { class: "text" }, full);
    const li = this.entry(id, "message_complete", "assistant", h("span", { class: "who" }, "assistant"), p);
    this.messages.set(d.message_id, { li, p, buffer: full });
  }

  toolUse(id, d) {
    const result = h("div", { class: "tool-result" });
    const li = this.entry(
      id,
      "tool_use",
      "tool",
      h("span", { class: "who" }, "tool call"),
      h("span", { class: "tool-name" }, String(d.tool_name ?? "")),
      h("span", { class: "muted mono" }, ` ${d.tool_use_id ?? ""}`),
      json(d.input),
      result,
    );
    li.dataset.toolUseId = String(d.tool_use_id ?? "");
    this.tools.set(String(d.tool_use_id), result);
  }

  toolResult(id, d) {
    const out = typeof d.output === "string" ? d.output : JSON.stringify(d.output, null, 2);
    const body = [h("span", { class: "who" }, d.is_error ? "tool error" : "tool result", h("span", { class: "muted" }, ` #${id ?? ""}`)), h("pre", { class: d.is_error ? "error" : "" }, out)];
    const slot = this.tools.get(String(d.tool_use_id));
    if (slot) slot.append(...body);
    else this.entry(id, "tool_result", "tool", ...body);
  }

  /** A permission or hook decision: approve, or deny with an optional message and interrupt. */
  permission(id, d, title, input, context) {
    const cid = String(d.correlation_id ?? "");
    const message = h("input", { class: "deny-message", placeholder: "message (optional, sent with deny)" });
    const interrupt = h("input", { type: "checkbox", class: "deny-interrupt" });
    const approve = h("button", { type: "button", class: "approve" }, "Approve");
    const deny = h("button", { type: "button", class: "deny" }, "Deny");
    const controls = h("div", { class: "controls" }, approve, deny, message, h("label", {}, interrupt, " interrupt on deny"));
    const li = this.prompt(id, "permission_request", cid, title, [json(input), context && Object.keys(context).length ? h("details", {}, h("summary", {}, "context"), json(context)) : null], controls);
    approve.addEventListener("click", () => this.send(li, { type: "permission_response", correlation_id: cid, behavior: "allow" }, "approved"));
    deny.addEventListener("click", () => {
      const body = { type: "permission_response", correlation_id: cid, behavior: "deny" };
      if (message.value.trim()) body.message = message.value.trim();
      if (interrupt.checked) body.interrupt = true;
      this.send(li, body, "denied");
    });
  }

  /** `data.questions` is the AskUserQuestion tool input `{questions:[{question, header?,
   * multiSelect?, options:[{label, description?}]}]}`; answers are keyed by question text. */
  question(id, d) {
    const cid = String(d.correlation_id ?? "");
    const qs = Array.isArray(d.questions) ? d.questions : Array.isArray(d.questions?.questions) ? d.questions.questions : [];
    const sets = qs.map((q, i) => {
      const kind = q.multiSelect ? "checkbox" : "radio";
      const options = (Array.isArray(q.options) ? q.options : []).map((o) =>
        h("label", { class: "option" }, h("input", { type: kind, name: `${cid}-q${i}`, value: String(o.label ?? "") }), ` ${o.label ?? ""}`, o.description ? h("span", { class: "muted" }, ` — ${o.description}`) : null),
      );
      const other = h("input", { class: "other", placeholder: "other answer (optional)" });
      return { q, other, el: h("fieldset", {}, h("legend", {}, q.header ? `${q.header}: ` : "", String(q.question ?? "")), options, other) };
    });
    const submit = h("button", { type: "button", class: "answer" }, "Answer");
    const li = this.prompt(id, "ask_user_question", cid, "Question", sets.map((s) => s.el), h("div", { class: "controls" }, submit));
    submit.addEventListener("click", () => {
      const answers = {};
      for (const { q, other, el } of sets) {
        const picked = [...el.querySelectorAll("input:checked")].map((i) => i.value);
        if (other.value.trim()) picked.push(other.value.trim());
        answers[String(q.question ?? "")] = picked.join(", ");
      }
      this.send(li, { type: "question_response", correlation_id: cid, answers }, "answered");
    });
  }

  prompt(id, event, cid, title, body, controls) {
    const outcome = h("p", { class: "outcome", role: "status" });
    const li = this.entry(id, event, "prompt", h("span", { class: "who" }, title), h("span", { class: "muted mono" }, ` ${cid}`), body, controls, outcome);
    li.dataset.correlationId = cid;
    li.dataset.state = "pending";
    this.prompts.set(cid, { li, controls, outcome });
    return li;
  }

  async send(li, body, done) {
    const p = this.prompts.get(li.dataset.correlationId);
    for (const b of p.controls.querySelectorAll("button")) b.disabled = true;
    p.outcome.textContent = "sending…";
    try {
      await this.reply(body);
      if (li.dataset.state === "pending") {
        li.dataset.state = "answered";
        p.outcome.textContent = `${done} here; waiting for the agent`;
      }
    } catch (e) {
      if (e.status === 409) {
        li.dataset.state = "conflict";
        p.outcome.textContent = "answered elsewhere";
        p.controls.remove();
      } else {
        p.outcome.textContent = e.message;
        for (const b of p.controls.querySelectorAll("button")) b.disabled = false;
      }
    }
  }

  resolved(id, event, d) {
    const cid = String(d.correlation_id ?? "");
    const p = this.prompts.get(cid);
    const what = event === "permission_resolved" ? `resolved: ${d.behavior ?? "?"}` : "resolved";
    if (p) {
      p.controls.remove();
      p.li.classList.add("resolved");
      const before = p.li.dataset.state === "conflict" ? "answered elsewhere · " : "";
      p.li.dataset.state = "resolved";
      p.outcome.textContent = `${before}${what}`;
    }
    this.sys(id, event, `${cid} ${what}`, "muted");
  }
}
