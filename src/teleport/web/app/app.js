// The web UI: log in, list nodes, open a terminal. Plain ES module, no framework; every piece of
// server data reaches the page through textContent (never innerHTML), so names cannot inject.
// The session id lives only in an HttpOnly cookie; this page keeps the CSRF token in memory.

import { inviteToken, startSignup } from "./signup.js";
import { showAccount } from "./account.js";
import { allowsKeys, allowsOtp, keysSupported, useKey } from "./webauthn.js";
import { showSessions } from "./sessions.js";
import { showRecordings, closePlayer } from "./recordings.js";
import { showAudit } from "./audit.js";

export const state = { cluster: "", session: null, nodes: [], term: null, ws: null, mode: "otp" };
export const $ = (id) => document.getElementById(id);
// the pages of the top navigation; each shows itself (and loads its data)
const pages = { nodes: showNodes, sessions: showSessions, recordings: showRecordings, audit: showAudit };
// a page's address: the nodes page is the app's home, /web
const pagePath = (page) => (page === "nodes" ? "/web" : `/web/${page}`);
export const sitePath = (rest) => `/v1/webapi/sites/${encodeURIComponent(state.cluster)}/${rest}`;

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf_token;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.message) || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

export function show(view) {
  for (const v of document.querySelectorAll("main > section")) {
    v.hidden = v.id !== view;
    if (v.hidden && v.dataset.template) v.replaceChildren();  // no stray inputs in hidden views
  }
  if (view !== "player-view") closePlayer();
  const logged = !!state.session;
  $("whoami").hidden = !logged;
  $("logout").hidden = !logged;
  $("account-link").hidden = !logged;
  $("nav").hidden = !logged;
  const page = view.replace(/-view$/, "");
  for (const a of $("nav").querySelectorAll("button")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (pages[page] && location.pathname !== pagePath(page)) history.replaceState(null, "", pagePath(page));
  if (logged) $("whoami").textContent = state.session.user;
}

// A view whose content lives in a <template> (filled when shown, emptied when left).
export function fromTemplate(view) {
  show(view);
  const section = $(view);
  section.replaceChildren($(section.dataset.template).content.cloneNode(true));
  return section;
}

export async function loggedIn(session) {
  state.session = session;
  await showNodes();
}

export function setError(id, message) {
  $(id).textContent = message || "";
  $(id).hidden = !message;
}

// login ------------------------------------------------------------------------------------
async function onLogin(event) {
  event.preventDefault();
  setError("login-error", "");
  const form = event.target;
  try {
    state.session = await api("POST", "/v1/webapi/sessions", {
      user: $("login-user").value, password: $("login-password").value,
      otp_code: $("login-otp").value,
    });
    form.reset();
    await showNodes();
  } catch (err) {
    loginFailed(err);
  }
}

// What went wrong, in words: the server's one answer to a refused login covers a wrong name,
// password or code and a locked account, on purpose (it must not tell who exists).
function loginFailed(err) {
  let help = "";
  if (err.status === 429) help = "Too many attempts from your address: wait a minute and try again.";
  else if (err.status === 403) {
    help = "Check your user name, password and one-time code (codes change every 30 seconds). "
      + "After several failed attempts in a row, this account's logins from your address are "
      + "locked for a while: then wait, or ask an administrator.";
  }
  setError("login-error", err.message);
  $("login-help").textContent = help;
  $("login-help").hidden = !help;
}

async function onKeyLogin() {
  setError("login-error", "");
  $("login-help").hidden = true;
  try {
    const user = $("login-user").value;
    const begin = await api("POST", "/v1/webapi/webauthn/login/begin", {
      user, password: $("login-password").value });
    const credential = await useKey(begin.options);
    const session = await api("POST", "/v1/webapi/webauthn/login/finish", {
      user, webauthn: { challenge_id: begin.challenge_id, credential } });
    $("login-form").reset();
    await loggedIn(session);
  } catch (err) {
    loginFailed(err);
  }
}

async function onLogout() {
  closeTerminal();
  try { await api("DELETE", "/v1/webapi/sessions"); } catch { /* already ended */ }
  state.session = null;
  showLogin();
}

function showLogin() {
  if (location.pathname !== "/web" && !inviteToken()) history.replaceState(null, "", "/web");
  show("login-view");
  $("login-help").hidden = true;
  $("login-otp-row").hidden = !allowsOtp(state.mode);
  $("login-key").hidden = !(allowsKeys(state.mode) && keysSupported());
  $("login-user").focus();
}

export function sessionEnded(err) {
  if (err && err.status === 401) {
    state.session = null;
    showLogin();
    setError("login-error", `${err.message}.`);
    $("login-help").textContent = "Web sessions end after a while without use, and at the latest "
      + "half a day after logging in.";
    $("login-help").hidden = false;
    return true;
  }
  return false;
}

// nodes ------------------------------------------------------------------------------------
export async function showNodes() {
  show("nodes-view");
  setError("nodes-error", "");
  try {
    const data = await api("GET", `/v1/webapi/sites/${encodeURIComponent(state.cluster)}/nodes`);
    state.nodes = data.items || [];
    renderNodes();
    watchNodes();
  } catch (err) {
    if (!sessionEnded(err)) setError("nodes-error", err.message);
  }
}

// the list follows nodes as they come and go while it is on screen
function watchNodes() {
  if (state.nodesTimer) return;
  state.nodesTimer = setInterval(async () => {
    if ($("nodes-view").hidden || !state.session) return;
    try {
      const data = await api("GET", sitePath("nodes"));
      const items = data.items || [];
      if (JSON.stringify(items) !== JSON.stringify(state.nodes)) { state.nodes = items; renderNodes(); }
    } catch (err) { sessionEnded(err); }
  }, 5000);
}

function matches(node, query) {
  if (!query) return true;
  const labels = Object.entries(node.labels || {}).map(([k, v]) => `${k}=${v}`);
  const hay = [node.hostname, node.addr, node.id, ...labels].join(" ").toLowerCase();
  return query.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

function renderNodes() {
  const query = $("node-search").value.trim();
  const body = $("nodes-table").querySelector("tbody");
  body.replaceChildren();
  const shown = state.nodes.filter((n) => matches(n, query));
  for (const node of shown) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = node.hostname || node.id;
    const addr = document.createElement("td");
    addr.textContent = node.addr;
    const labels = document.createElement("td");
    for (const [k, v] of Object.entries(node.labels || {}).sort()) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = `${k}: ${v}`;
      chip.title = `Show nodes with ${k}=${v}`;
      chip.addEventListener("click", () => { $("node-search").value = `${k}=${v}`; renderNodes(); });
      labels.append(chip);
    }
    const connect = document.createElement("td");
    const logins = state.session.logins || [];
    if (logins.length) {
      const select = document.createElement("select");
      select.setAttribute("aria-label", `Login on ${name.textContent}`);
      for (const login of logins) select.append(new Option(login, login));
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Connect";
      button.setAttribute("aria-label", `Connect to ${name.textContent}`);
      button.addEventListener("click", () => openTerminal(node, select.value));
      connect.append(select, button);
    } else {
      connect.textContent = "no logins";
    }
    tr.append(name, addr, labels, connect);
    body.append(tr);
  }
  $("nodes-empty").hidden = shown.length > 0;
}

// terminal ---------------------------------------------------------------------------------
function closeTerminal() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  if (state.term) { state.term.dispose(); state.term = null; }
  window.removeEventListener("resize", fitTerminal);
}

function fitTerminal() {
  if (state.fit) state.fit.fit();
}

// join: the sid of a live session to join (node and login then come from the session)
export function openTerminal(node, login, join) {
  closeTerminal();
  show("terminal-view");
  const label = join ? `joined ${login}@${node.hostname || node.id}` : `${login}@${node.hostname || node.id}`;
  $("terminal-title").textContent = label;
  $("terminal-status").textContent = "connecting…";
  const term = new window.Terminal({ cursorBlink: true, convertEol: false, fontSize: 14 });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($("terminal"));
  fit.fit();
  state.term = term;
  state.fit = fit;
  const q = new URLSearchParams(join ? { sid: join, cols: term.cols, rows: term.rows }
    : { node: node.id, login, cols: term.cols, rows: term.rows });
  const ws = new WebSocket(
    `wss://${location.host}/v1/webapi/sites/${encodeURIComponent(state.cluster)}/connect?${q}`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  const encoder = new TextEncoder();
  ws.onopen = () => {
    // the CSRF token goes in-band: a WebSocket has no custom headers, and URLs hold no secrets
    ws.send(JSON.stringify({ type: "auth", csrf_token: state.session.csrf_token }));
    $("terminal-status").textContent = "connected";
    term.focus();
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") {
      term.write(new Uint8Array(event.data));
      return;
    }
    let msg = null;
    try { msg = JSON.parse(event.data); } catch { return; }
    $("terminal-status").textContent = msg.message;
    term.write(`\r\n\x1b[1;33m${msg.message}\x1b[0m\r\n`);
  };
  ws.onclose = () => {
    if ($("terminal-status").textContent === "connected") {
      // the proxy says why before it closes; a close without a word is a dropped connection
      const why = "connection to the proxy lost: reconnect from the node list";
      $("terminal-status").textContent = why;
      term.write(`\r\n\x1b[1;33m${why}\x1b[0m\r\n`);
    }
    state.ws = null;
  };
  term.onData((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  });
  term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols, rows }));
  });
  window.addEventListener("resize", fitTerminal);
}

// start --------------------------------------------------------------------------------------
async function start() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("login-key-button").addEventListener("click", onKeyLogin);
  $("account-link").addEventListener("click", () => {
    closeTerminal();
    history.pushState(null, "", "/web/account");
    showAccount(sessionEnded);
  });
  $("node-search").addEventListener("input", renderNodes);
  $("terminal-back").addEventListener("click", () => { closeTerminal(); showNodes(); });
  for (const b of $("nav").querySelectorAll("button")) {
    b.addEventListener("click", () => { closeTerminal(); pages[b.dataset.page](); });
  }
  try {
    const ping = await api("GET", "/v1/webapi/ping");
    state.cluster = ping.cluster_name;
    state.mode = (ping.auth && ping.auth.second_factor) || "otp";
    $("cluster").textContent = state.cluster;
    document.title = `Teleport: ${state.cluster}`;
  } catch (err) {
    setError("login-error", `cannot reach the proxy: ${err.message}`);
  }
  const token = inviteToken();
  if (token) {
    await startSignup(token);
    return;
  }
  try {
    state.session = await api("GET", "/v1/webapi/sessions");
  } catch {
    state.session = null;
    showLogin();
    return;
  }
  const page = location.pathname.replace(/^\/web\/?/, "");
  if (page === "account") await showAccount(sessionEnded);
  else await (pages[page] || showNodes)();
}

start();
