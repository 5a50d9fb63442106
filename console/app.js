// Entry point: sign-in, the navigation bar and a hash router (`#/sessions`, `#/session/<id>`,
// `#/audit`, `#/hosts`). Each page is a module with `mount(container, ctx, arg)` returning a
// cleanup function that stops its polling and streams when the operator leaves it.

import * as api from "./api.js";
import * as sessions from "./sessions.js";
import * as session from "./session.js";
import * as audit from "./audit.js";
import * as hosts from "./hosts.js";

const $ = (id) => document.getElementById(id);
const pages = { sessions, session, audit, hosts };
const ctx = { admin: false, navigate: (hash) => (location.hash = hash) };
let cleanup = () => {};

async function signIn(event) {
  event.preventDefault();
  const input = $("token");
  const error = $("signin-error");
  error.textContent = "";
  api.setToken(input.value.trim());
  try {
    await api.get("/sessions", { limit: 1 });
  } catch (e) {
    api.setToken(null);
    error.textContent = e.status === 401 ? `401 unauthorized: ${messageOf(e)}` : e.message;
    return;
  }
  // Admin or not decides which pages exist; /hosts answers 403 admin_required otherwise.
  try {
    await api.get("/hosts", { limit: 1 });
    ctx.admin = true;
  } catch (e) {
    if (e.status !== 403) {
      api.setToken(null);
      error.textContent = e.message;
      return;
    }
    ctx.admin = false;
  }
  input.value = ""; // the token lives in memory now, not in the page
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = ctx.admin ? "signed in (admin)" : "signed in";
  for (const a of document.querySelectorAll("[data-admin]")) a.hidden = !ctx.admin;
  document.body.dataset.signedIn = ctx.admin ? "admin" : "user";
  route();
}

function messageOf(e) {
  return e.message.replace(/^\d+ [a-z_]+: /, "");
}

function signOut(reason) {
  cleanup();
  cleanup = () => {};
  api.setToken(null);
  ctx.admin = false;
  $("page").hidden = true;
  $("page").replaceChildren();
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  delete document.body.dataset.signedIn;
  $("signin").hidden = false;
  $("signin-error").textContent = reason ?? "";
  $("token").focus();
}

function route() {
  if (!api.signedIn()) return;
  cleanup();
  const [, name = "sessions", arg] = location.hash.match(/^#\/([a-z]+)(?:\/(.+))?$/) ?? [];
  const allowed = pages[name] && (ctx.admin || (name !== "audit" && name !== "hosts"));
  const page = allowed ? name : "sessions";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("current", a.dataset.page === page || (page === "session" && a.dataset.page === "sessions"));
  }
  const container = $("page");
  container.replaceChildren();
  container.hidden = false;
  container.dataset.page = page;
  cleanup = pages[page].mount(container, ctx, arg ? decodeURIComponent(arg) : undefined) ?? (() => {});
}

api.whenUnauthorized((e) => signOut(`401 unauthorized: ${messageOf(e)}`));
$("signin").addEventListener("submit", signIn);
$("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
