// Recordings: the sessions recorded in the cluster (who, node, login, when, how long), newest
// first, each opening the player.
import { api, show, setError, sessionEnded, sitePath } from "./app.js";
import { h, section, table, fmtTime, fmtDuration } from "./dom.js";
import { openPlayer, closePlayer } from "./player.js";

export { closePlayer };

function build() {
  const [t] = table("recordings-table", ["User", "Node", "Login", "Started", "Duration", ""]);
  return h("section", { className: "card" },
    h("div", { className: "row" }, h("h1", { text: "Recordings" }), h("span", { className: "spacer" }),
      h("label", { for: "recordings-search", className: "inline", text: "Search" }),
      h("input", { id: "recordings-search", type: "search", placeholder: "user, node or login",
        oninput: render })),
    h("p", { id: "recordings-error", className: "error", role: "alert", hidden: true }),
    h("div", { className: "scroll" }, t),
    h("p", { id: "recordings-empty", className: "muted", hidden: true, text: "No recordings match." }));
}

let items = [];

export async function showRecordings() {
  section("recordings-view", build);
  show("recordings-view");
  setError("recordings-error", "");
  try {
    items = (await api("GET", sitePath("recordings"))).items || [];
  } catch (err) {
    items = [];
    if (sessionEnded(err)) return;
    setError("recordings-error", err.status === 403
      ? `You may not list recordings: ${err.message}. Ask an administrator for a role with the session list rule.`
      : err.message);
  }
  render();
}

function render() {
  const query = document.getElementById("recordings-search").value.trim().toLowerCase();
  const shown = items.filter((r) => !query
    || query.split(/\s+/).every((w) => [r.user, r.node, r.login, r.sid].join(" ").toLowerCase().includes(w)));
  document.querySelector("#recordings-table tbody").replaceChildren(...shown.map((r) => h("tr", {},
    h("td", { text: r.user }), h("td", { text: r.node }), h("td", { text: r.login }),
    h("td", { text: fmtTime(r.start) }), h("td", { text: fmtDuration(r.duration) }),
    h("td", { className: "actions" }, h("button", {
      type: "button", text: "Play", "aria-label": `Play session of ${r.user} on ${r.node} at ${fmtTime(r.start)}`,
      onclick: () => openPlayer(r, showRecordings),
    })))));
  document.getElementById("recordings-empty").hidden =
    shown.length > 0 || !document.getElementById("recordings-error").hidden;
}
