// Hosts page (admins): `GET /hosts`, polled, so an operator sees which hosts are alive by the
// rule takeovers use, how old each heartbeat is against the lease, and how many sessions
// each owns.

import * as api from "./api.js";
import { h, fill, time } from "./dom.js";

const POLL_MS = 3000;

export function mount(container) {
  const body = h("tbody", { id: "hosts-rows" });
  const status = h("p", { class: "muted", id: "hosts-status" });
  container.append(
    h("h1", {}, "Hosts"),
    h(
      "table",
      { class: "rows" },
      h("thead", {}, h("tr", {}, ["id", "name", "liveness", "lease age", "sessions owned", "started", "lock taken", "released"].map((c) => h("th", {}, c)))),
      body,
    ),
    status,
  );
  let stopped = false;

  async function load() {
    try {
      const { hosts, lease_secs } = await api.get("/hosts", { limit: 200 });
      if (stopped) return;
      fill(
        body,
        hosts.map((x) =>
          h(
            "tr",
            { "data-host-id": x.id },
            h("td", { class: "num" }, String(x.id)),
            h("td", {}, x.name),
            h("td", {}, h("span", { class: `badge ${x.alive ? "active" : x.released_at ? "closed" : "dead"}` }, x.alive ? "alive" : x.released_at ? "released" : "dead")),
            h("td", { class: x.alive ? "num" : "num muted" }, `${x.lease_age_secs.toFixed(1)} s / ${lease_secs} s`),
            h("td", { class: "num" }, String(x.sessions_owned)),
            h("td", {}, time(x.started_at)),
            h("td", {}, time(x.locked_at)),
            h("td", {}, time(x.released_at)),
          ),
        ),
      );
      status.textContent = `${hosts.length} hosts · refreshed ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (!stopped) status.textContent = e.message;
    }
  }

  load();
  const timer = setInterval(load, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
