// The operator console (/console) in headless Chromium, driven through its own UI the way an
// operator would: sign in, create a session, watch a turn stream in, approve a permission,
// lose the same approval in a second tab (409 → "answered elsewhere"), find that decision in
// the audit view and export it, see hostile event content rendered as text, and be refused
// with a wrong token; answer a question. tests/it/console.rs starts the server and runs this.
//
// Environment: AGENT_WEBKIT_URL, AGENT_WEBKIT_TOKEN, AGENT_WEBKIT_ADMIN_TOKEN, CONSOLE_SCRATCH
// (a directory for the browser profile, downloads and failure screenshots) and optionally
// CONSOLE_SCREENSHOTS (a directory to save docs/console-session.png and console-audit.png).
// Prints one JSON line; exits non-zero on the first failed check. Every wait is bounded.

import puppeteer from "puppeteer-core";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

const base = process.env.AGENT_WEBKIT_URL;
const token = process.env.AGENT_WEBKIT_TOKEN;
const adminToken = process.env.AGENT_WEBKIT_ADMIN_TOKEN;
const scratch = process.env.CONSOLE_SCRATCH;
const shots = process.env.CONSOLE_SCREENSHOTS || null;
const WAIT = 15_000;
const XSS = "<img src=x onerror=alert(1)>";

const seen = {};
const dialogs = [];
const problems = []; // CSP violations and uncaught page errors
const pages = {};
const downloads = path.join(scratch, "downloads");
fs.mkdirSync(downloads, { recursive: true });

const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  timeout: 30_000,
  protocolTimeout: 30_000,
  args: [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // Several tabs act at once here; a background tab must keep running its stream and timers.
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    `--user-data-dir=${fs.mkdtempSync(path.join(scratch, "profile-"))}`,
  ],
});

/** A new tab on the console, watched for dialogs, CSP violations and page errors. */
async function open(name) {
  const page = await browser.newPage();
  pages[name] = page;
  page.setDefaultTimeout(WAIT);
  await page.setViewport({ width: 1280, height: 900 });
  page.on("dialog", async (d) => {
    dialogs.push(`${name}: ${d.type()} ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => problems.push(`${name}: page error ${e.message}`));
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`${name}: ${m.text()}`);
  });
  await page.goto(`${base}/console`, { waitUntil: "load", timeout: WAIT });
  return page;
}

async function signIn(page, bearer, as = "user") {
  await page.type("#token", bearer);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector(`body[data-signed-in="${as}"]`);
  // The token is in memory only: not in the field, the URL, cookies or storage.
  assert.equal(await page.$eval("#token", (el) => el.value), "");
  const leaks = await page.evaluate(
    (t) => [location.href, document.cookie, JSON.stringify({ ...localStorage }), JSON.stringify({ ...sessionStorage })].filter((s) => s.includes(t)),
    bearer,
  );
  assert.deepEqual(leaks, [], "the token is stored nowhere but in memory");
}

/** Waits until `selector`'s text contains `text`. */
async function waitText(page, selector, text) {
  try {
    await page.waitForFunction((s, t) => [...document.querySelectorAll(s)].some((el) => el.textContent.includes(t)), { timeout: WAIT, polling: 100 }, selector, text);
  } catch (e) {
    const got = await page.$$eval(selector, (els) => els.map((el) => el.textContent).join(" | ")).catch(() => "?");
    throw new Error(`waiting for ${JSON.stringify(text)} in ${selector}; it holds: ${got.slice(0, 500)}`);
  }
}

const prompt = (cid) => `#timeline li.prompt[data-correlation-id="${cid}"]`;

async function wrongToken() {
  const page = await open("wrong-token");
  await page.type("#token", "not-the-token");
  await page.click("#signin button[type=submit]");
  await waitText(page, "#signin-error", "401");
  seen.wrongToken = await page.$eval("#signin-error", (el) => el.textContent);
  assert.equal(await page.$eval("#nav", (el) => el.hidden), true, "no pages without a token");
  await page.close();
  delete pages["wrong-token"];
}

async function permissionRace() {
  const one = await open("session-1");
  await signIn(one, token);
  assert.equal(await one.$eval('a[data-page="audit"]', (el) => el.hidden), true, "audit is for admins");
  // Create from the Sessions page: the console opens the new session.
  await one.type('#new-session input[name="fixture"]', "read_allow");
  await one.click("#create-session");
  await one.waitForFunction(() => location.hash.startsWith("#/session/"), { timeout: WAIT, polling: 100 });
  const id = await one.evaluate(() => decodeURIComponent(location.hash.slice("#/session/".length)));
  await waitText(one, "#stream-status", "live");
  await waitText(one, "#timeline", "session ready");
  await one.type("#message", "read the README");
  await one.click("#send");
  await one.waitForSelector(`${prompt("tu_1")}[data-state="pending"]`);
  await one.waitForSelector('#timeline li[data-tool-use-id="tu_1"]');

  // A second tab on the same session sees the same pending prompt. To make its reply lose the
  // race for certain, it disconnects its stream first: then no `permission_resolved` can
  // clear its prompt, its Approve button is still there after tab 1 has won, and its click
  // sends a reply the server must refuse with 409.
  const two = await open("session-2");
  await signIn(two, token);
  await two.evaluate((sid) => (location.hash = `#/session/${sid}`), id);
  await two.waitForSelector(`${prompt("tu_1")}[data-state="pending"]`);
  await two.click("#disconnect");
  await waitText(two, "#stream-status", "stopped");

  await one.bringToFront();
  await one.click(`${prompt("tu_1")} button.approve`);
  await one.waitForSelector(`${prompt("tu_1")}[data-state="resolved"]`);
  await waitText(one, `${prompt("tu_1")} .outcome`, "resolved: allow");
  await waitText(one, '#timeline li[data-tool-use-id="tu_1"] .tool-result', "first line");
  await waitText(one, "#timeline li.assistant .text", "First line: first line");
  await one.waitForSelector('#timeline li[data-event="result"]');
  assert.equal(await one.$$eval(`${prompt("tu_1")} button.approve`, (b) => b.length), 0, "a resolved prompt has no buttons");

  await two.bringToFront();
  await two.click(`${prompt("tu_1")} button.approve`);
  await two.waitForSelector(`${prompt("tu_1")}[data-state="conflict"]`);
  await waitText(two, `${prompt("tu_1")} .outcome`, "answered elsewhere");

  // Reconnecting tab 2 from the start replays the story, its prompt cleared by the event.
  await two.click("#connect");
  await two.waitForSelector(`${prompt("tu_1")}[data-state="resolved"]`);

  // Resume from an event id: only what follows it.
  const resultId = await one.$eval('#timeline li[data-event="result"]', (el) => el.dataset.eventId);
  await two.click("#resume-from", { clickCount: 3 });
  await two.type("#resume-from", String(Number(resultId) - 1));
  await two.click("#connect");
  await two.waitForSelector('#timeline li[data-event="result"]');
  const ids = await two.$$eval("#timeline li[data-event-id]", (els) => els.map((el) => Number(el.dataset.eventId)));
  assert.deepEqual(ids, [Number(resultId)], `resumed after ${Number(resultId) - 1}`);

  await waitText(one, "#session-meta", "turns 1");
  if (shots) await one.screenshot({ path: path.join(shots, "console-session.png") });
  seen.session = id;
  seen.timeline = await one.$$eval("#timeline li", (els) => els.map((el) => el.dataset.event ?? "local"));

  // The Sessions page lists it, live.
  await one.evaluate(() => (location.hash = "#/sessions"));
  await one.waitForSelector(`#sessions-rows tr[data-session-id="${id}"]`);
  await two.close();
  delete pages["session-2"];
  return id;
}

/** The newest finished download ending in `ext`, parsed by `parse`. */
async function downloaded(ext, before) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    const files = fs.readdirSync(downloads).filter((f) => f.endsWith(ext) && !before.includes(f));
    if (files.length) return fs.readFileSync(path.join(downloads, files[0]), "utf8");
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${ext} download within ${WAIT} ms`);
}

async function audit(id) {
  const page = await open("audit");
  const cdp = await browser.target().createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
  await signIn(page, adminToken, "admin");

  // Inputs tab: the refused reply, filtered by correlation id and status.
  await page.evaluate(() => (location.hash = "#/audit"));
  await page.click("#tab-inputs");
  await page.type('#audit-inputs-form input[name="correlation_id"]', "tu_1");
  await page.type('#audit-inputs-form input[name="session_id"]', id);
  await page.select('#audit-inputs-form select[name="status"]', "409");
  await page.click("#audit-inputs-form button[type=submit]");
  await waitText(page, "#audit-status", "1 rows loaded");
  await waitText(page, "#audit-table tbody", "409");

  // The decision's whole story, from a correlation id link in the Events tab.
  await page.click("#tab-events");
  await page.type('#audit-events-form input[name="session_id"]', id);
  await page.select('#audit-events-form select[name="event"]', "permission_resolved");
  await page.click("#audit-events-form button[type=submit]");
  await waitText(page, "#audit-status", "1 rows loaded");
  await page.click("#audit-table a.story-link");
  await waitText(page, "#story-summary", "decided allow by token");
  await waitText(page, "#story-summary", "1 later reply refused (409)");
  const story = await page.$$eval("#story li", (els) => els.map((el) => `${el.dataset.kind}:${el.dataset.name}:${el.dataset.status}`));
  const at = (s) => story.indexOf(s);
  assert.ok(at("event:permission_request:") >= 0, story.join());
  assert.ok(at("event:permission_request:") < at("input:permission_response:204"), story.join());
  assert.ok(at("input:permission_response:204") < at("event:permission_resolved:"), story.join());
  assert.ok(at("event:permission_resolved:") < at("event:tool_result:"), story.join());
  assert.ok(at("input:permission_response:409") > at("input:permission_response:204"), story.join());
  seen.story = story;

  // Export what is loaded, as JSON and as CSV.
  let before = fs.readdirSync(downloads);
  await page.click("button.export-json");
  const rows = JSON.parse(await downloaded(".json", before));
  assert.equal(rows.length, story.length);
  const decision = rows.find((r) => r.kind === "input" && r.status === 204);
  assert.equal(decision.principal, "token");
  assert.equal(decision.data.behavior, "allow");
  assert.equal(decision.data.correlation_id, "tu_1");
  assert.ok(rows.some((r) => r.kind === "input" && r.status === 409));
  before = fs.readdirSync(downloads);
  await page.click("button.export-csv");
  const csv = await downloaded(".csv", before);
  const lines = csv.trim().split("\r\n");
  assert.equal(lines[0], "at,kind,name,session_id,id,principal,status,data");
  assert.equal(lines.length, story.length + 1);
  assert.ok(lines.some((l) => l.includes(",input,permission_response,") && l.includes(",token,409,")), csv);
  seen.exported = { json: rows.length, csv: lines.length - 1 };
  if (shots) await page.screenshot({ path: path.join(shots, "console-audit.png") });

  // Hosts: this server, alive.
  await page.evaluate(() => (location.hash = "#/hosts"));
  await waitText(page, "#hosts-rows", "alive");

  // Someone else's session: an admin cannot stream it, so the console shows the stored history.
  await page.evaluate((sid) => (location.hash = `#/session/${sid}`), id);
  await waitText(page, "#session-notice", "stored history");
  await page.waitForSelector(`${prompt("tu_1")}[data-state="resolved"]`);
  await page.close();
  delete pages.audit;
}

async function hostileContent() {
  const page = pages["session-1"];
  await page.bringToFront();
  await page.evaluate(() => (location.hash = "#/sessions"));
  await page.type('#new-session input[name="fixture"]', "xss");
  await page.click("#create-session");
  await page.waitForFunction(() => location.hash.startsWith("#/session/"), { timeout: WAIT, polling: 100 });
  await waitText(page, "#stream-status", "live");
  await page.type("#message", XSS);
  await page.click("#send");
  await page.waitForSelector('#timeline li[data-event="result"]');
  const view = await page.evaluate((x) => {
    const text = document.getElementById("timeline").innerText;
    return { count: text.split(x).length - 1, images: document.querySelectorAll("img").length, scripts: document.querySelectorAll("#page script").length };
  }, XSS);
  // The user's message, the assistant's text, the tool input and the tool result.
  assert.ok(view.count >= 4, JSON.stringify(view));
  assert.equal(view.images, 0, "no element was made from event content");
  assert.equal(view.scripts, 0);
  await waitText(page, "#timeline", "<script>alert(2)</script>");
  // Delete from the console: two clicks (no confirm() dialog), then the stream's `done`.
  await page.click("#delete");
  await page.click("#delete");
  await waitText(page, "#timeline", "session closed");
  await new Promise((r) => setTimeout(r, 300)); // any late onerror would have fired by now
  seen.hostile = view;
}

async function question() {
  const page = pages["session-1"];
  await page.evaluate(() => (location.hash = "#/sessions"));
  await page.type('#new-session input[name="fixture"]', "ask_user_question");
  await page.click("#create-session");
  await page.waitForFunction(() => location.hash.startsWith("#/session/"), { timeout: WAIT, polling: 100 });
  const id = await page.evaluate(() => decodeURIComponent(location.hash.slice("#/session/".length)));
  await waitText(page, "#stream-status", "live");
  await page.type("#message", "ask me");
  await page.click("#send");
  const q = `${prompt("tu_q")}[data-state="pending"]`;
  await page.waitForSelector(q);
  await waitText(page, `${q} legend`, "Pick a color");
  await page.click(`${q} input[value="blue"]`);
  await page.click(`${q} button.answer`);
  await page.waitForSelector(`${prompt("tu_q")}[data-state="resolved"]`);
  await waitText(page, "#timeline li.assistant .text", "You picked a color.");
  // What the console sent: answers keyed by question text.
  const res = await fetch(`${base}/audit/inputs?session_id=${id}&type=question_response`, { headers: { authorization: `Bearer ${adminToken}` } });
  const { inputs } = await res.json();
  assert.deepEqual(inputs.map((i) => [i.status, i.body.answers]), [[204, { "Pick a color": "blue" }]]);
  seen.question = inputs[0].body.answers;
}

let failed = null;
try {
  await wrongToken();
  const id = await permissionRace();
  await audit(id);
  await hostileContent();
  await question();
  assert.deepEqual(dialogs, [], "no dialog ever opened");
  assert.deepEqual(problems, [], "no CSP violation or page error");
} catch (e) {
  failed = e;
}
if (failed) {
  const saved = [];
  for (const [name, page] of Object.entries(pages)) {
    const file = path.join(scratch, `failure-${name}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true });
      saved.push(file);
    } catch {
      // a closed or crashed page has nothing to show
    }
  }
  console.error(`screenshots: ${saved.join(" ")}`);
}
await browser.close().catch(() => {});
console.log(JSON.stringify(failed ? { ok: false, seen, dialogs, problems, error: String(failed?.stack ?? failed) } : { ok: true, seen }));
process.exit(failed ? 1 : 0);
