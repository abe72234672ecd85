// The audit log: events the user's roles let them read (event list), newest first, filtered by
// type, user and date. Dates are the browser's local days.
import { api, show, setError, sessionEnded, sitePath } from "./app.js";
import { h, section, table, fmtTime } from "./dom.js";

const TYPES = [
  ["", "All events"], ["session.start", "Session started"], ["session.end", "Session ended"],
  ["session.join", "Session joined"], ["session.leave", "Session left"], ["exec", "Command"],
  ["user.login", "Login"], ["scp", "File copy"], ["port", "Port forward"],
  ["auth", "SSH authentication"], ["session.upload", "Recording uploaded"],
];
// fields worth a glance in the details column, in this order
const DETAILS = ["login", "server_hostname", "addr_remote", "command", "method", "success", "error",
  "exitCode", "path", "action", "sid"];

function build() {
  const [t] = table("events-table", ["Time", "Type", "User", "Details"]);
  const field = (id, label, input) => h("div", { className: "field" }, h("label", { for: id, text: label }), input);
  return h("section", { className: "card" },
    h("h1", { text: "Audit log" }),
    h("form", { id: "events-filter", className: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      field("events-type", "Event type", h("select", { id: "events-type" },
        TYPES.map(([v, text]) => h("option", { value: v, text })))),
      field("events-user", "User", h("input", { id: "events-user", autocomplete: "off", placeholder: "any user" })),
      field("events-from", "From date", h("input", { id: "events-from", type: "date" })),
      field("events-to", "To date", h("input", { id: "events-to", type: "date" })),
      h("div", { className: "field" }, h("button", { type: "submit", text: "Show events" }))),
    h("p", { id: "events-error", className: "error", role: "alert", hidden: true }),
    h("div", { className: "scroll" }, t),
    h("p", { id: "events-empty", className: "muted", hidden: true, text: "No events match." }));
}

export async function showAudit() {
  section("audit-view", build);
  show("audit-view");
  await load();
}

function dayStart(value, plusDays = 0) {
  if (!value) return "";
  const [y, m, d] = value.split("-").map(Number);
  return String(new Date(y, m - 1, d + plusDays).getTime() / 1000);
}

async function load() {
  setError("events-error", "");
  const q = new URLSearchParams();
  const type = document.getElementById("events-type").value;
  const user = document.getElementById("events-user").value.trim();
  if (type) q.set("type", type);
  if (user) q.set("user", user);
  const since = dayStart(document.getElementById("events-from").value);
  const until = dayStart(document.getElementById("events-to").value, 1); // the whole "to" day
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  let items = [];
  try {
    items = (await api("GET", sitePath(`events?${q}`))).items || [];
  } catch (err) {
    if (sessionEnded(err)) return;
    setError("events-error", err.status === 403
      ? `You may not read the audit log: ${err.message}. Ask an administrator for a role with the event list rule (such as auditor).`
      : err.message);
  }
  document.querySelector("#events-table tbody").replaceChildren(...items.map(row));
  document.getElementById("events-empty").hidden = items.length > 0 || !document.getElementById("events-error").hidden;
}

function row(ev) {
  const when = Date.parse(ev.time);
  const details = DETAILS.filter((k) => ev[k] !== undefined && ev[k] !== null && ev[k] !== "")
    .map((k) => h("span", { className: "kv" }, h("span", { className: "k", text: `${k} ` }), String(ev[k])));
  return h("tr", {},
    h("td", { className: "nowrap", text: Number.isNaN(when) ? String(ev.time || "-") : fmtTime(when / 1000) }),
    h("td", {}, h("span", { className: `chip static ev-${String(ev.event).replace(/[^a-z]/g, "")}`, text: ev.event })),
    h("td", { text: ev.user || "-" }),
    h("td", { className: "details" }, details));
}
