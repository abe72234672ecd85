// Active sessions: the live sessions the user's roles let them see, each with "Join" (as
// `tsh join`: the terminal attaches to the same shell; the proxy and the node check access).
import { api, state, show, setError, sessionEnded, openTerminal, sitePath } from "./app.js";
import { h, section, table, fmtTime } from "./dom.js";

let timer = null;

function build() {
  const [t] = table("sessions-table", ["Session", "Node", "Login", "Participants", "Started", ""]);
  return h("section", { className: "card" },
    h("div", { className: "row" }, h("h1", { text: "Active sessions" }), h("span", { className: "spacer" }),
      h("span", { className: "muted small", id: "sessions-updated", role: "status" })),
    h("p", { id: "sessions-error", className: "error", role: "alert", hidden: true }),
    h("div", { className: "scroll" }, t),
    h("p", { id: "sessions-empty", className: "muted", hidden: true,
      text: "No active sessions. Sessions started with tsh ssh or the browser terminal show here." }));
}

export async function showSessions() {
  section("sessions-view", build);
  show("sessions-view");
  setError("sessions-error", "");
  await refresh();
  if (!timer) timer = setInterval(() => { if (!document.getElementById("sessions-view").hidden) refresh(); }, 5000);
}

async function refresh() {
  let items = [];
  try {
    items = (await api("GET", sitePath("sessions"))).items || [];
    setError("sessions-error", "");
  } catch (err) {
    if (sessionEnded(err)) return;
    setError("sessions-error", err.status === 403
      ? `You may not list sessions: ${err.message}. Ask an administrator for a role with the session list rule.`
      : err.message);
  }
  const body = document.querySelector("#sessions-table tbody");
  body.replaceChildren(...items.map(row));
  document.getElementById("sessions-empty").hidden =
    items.length > 0 || !document.getElementById("sessions-error").hidden;
  document.getElementById("sessions-updated").textContent = `updated ${fmtTime(Date.now() / 1000).slice(11)}`;
}

function row(s) {
  const logins = (state.session && state.session.logins) || [];
  const where = `${s.login}@${s.node}`;
  const join = logins.includes(s.login)
    ? h("button", { type: "button", "aria-label": `Join session of ${s.user} on ${s.node}`, text: "Join",
      onclick: () => openTerminal({ id: s.server_id, hostname: s.node }, s.login, s.sid) })
    : h("span", { className: "muted", title: `your roles do not allow login ${s.login}`, text: "cannot join" });
  return h("tr", {},
    h("td", { className: "mono", title: s.sid, text: s.sid.slice(0, 8) }),
    h("td", { text: s.node }),
    h("td", { text: s.login }),
    h("td", {}, s.parties.map((p) => h("span", { className: "chip static", text: p }))),
    h("td", { text: fmtTime(s.created) }),
    h("td", { className: "actions", "data-where": where }, join));
}
