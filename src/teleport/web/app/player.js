// The recording player: renders a session's asciicast events into xterm.js in the page, with
// play/pause, speed, a seek bar and skipping of idle gaps (a gap longer than IDLE_CAP seconds
// plays as IDLE_CAP). Seeking back replays from the start into a reset terminal (fast: one write).
import { api, show, setError, sessionEnded, sitePath } from "./app.js";
import { h, section, fmtTime, fmtDuration } from "./dom.js";

const IDLE_CAP = 1.0;
const TICK_MS = 50;
const p = { term: null, events: [], times: [], next: 0, pos: 0, total: 0, timer: null, last: 0 };

function build() {
  const speed = h("select", { id: "player-speed", onchange: () => { p.last = performance.now(); } },
    ["0.5", "1", "2", "4", "8", "16"].map((s) => h("option", { value: s, text: `${s}×`, selected: s === "1" })));
  return h("section", {},
    h("div", { className: "row termbar" },
      h("button", { id: "player-back", type: "button", className: "secondary", text: "Back to recordings" }),
      h("span", { id: "player-title" }), h("span", { className: "spacer" }),
      h("span", { id: "player-status", role: "status" })),
    h("p", { id: "player-error", className: "error", role: "alert", hidden: true }),
    h("div", { id: "player-screen" }),
    h("div", { className: "row controls" },
      h("button", { id: "player-play", type: "button", text: "Play", onclick: toggle }),
      h("label", { for: "player-seek", className: "inline", text: "Position" }),
      h("input", { id: "player-seek", type: "range", min: "0", max: "0", step: "0.01", value: "0",
        oninput: (e) => seek(Number(e.target.value)) }),
      h("span", { id: "player-time", className: "mono" }),
      h("label", { for: "player-speed", className: "inline", text: "Speed" }), speed,
      h("input", { id: "player-skip", type: "checkbox", checked: true, onchange: retime }),
      h("label", { for: "player-skip", className: "inline", text: "Skip idle gaps" })));
}

export function closePlayer() {
  pause();
  if (p.term) { p.term.dispose(); p.term = null; }
}

export async function openPlayer(rec, back) {
  closePlayer();
  section("player-view", build);
  show("player-view");
  document.getElementById("player-back").onclick = back;
  document.getElementById("player-title").textContent =
    `${rec.user} as ${rec.login}@${rec.node}, ${fmtTime(rec.start)}`;
  document.getElementById("player-status").textContent = "loading…";
  setError("player-error", "");
  let data;
  try {
    data = await api("GET", sitePath(`recordings/${encodeURIComponent(rec.sid)}`));
  } catch (err) {
    if (!sessionEnded(err)) setError("player-error", err.message);
    document.getElementById("player-status").textContent = "";
    return;
  }
  p.term = new window.Terminal({ cols: data.width, rows: data.height, disableStdin: true,
    convertEol: false, fontSize: 14, scrollback: 0 });
  p.term.open(document.getElementById("player-screen"));
  p.events = data.events;
  retime();
  if (data.problems && data.problems.length) {
    setError("player-error", `This recording is incomplete: ${data.problems.join("; ")}`);
  }
  play();
}

// playback times of the events: the recorded times, idle gaps capped when skipping is on
function retime() {
  const skip = document.getElementById("player-skip").checked;
  const at = p.next;
  p.times = [];
  let prev = 0, t = 0;
  for (const [rt] of p.events) {
    const gap = Math.max(0, rt - prev);
    prev = Math.max(prev, rt);
    t += skip ? Math.min(gap, IDLE_CAP) : gap;
    p.times.push(t);
  }
  p.total = p.times.length ? p.times[p.times.length - 1] : 0;
  const seekbar = document.getElementById("player-seek");
  seekbar.max = String(p.total);
  // keep the screen where it was: the same event, at its new time
  p.pos = at > 0 ? p.times[at - 1] : 0;
  update();
}

function apply(from, to) {
  let out = "";
  for (let i = from; i < to; i++) {
    const [, kind, text] = p.events[i];
    if (kind === "o") out += text;
    else if (kind === "r") {
      if (out) { p.term.write(out); out = ""; }
      const [c, r] = text.split("x").map(Number);
      if (c > 0 && r > 0) p.term.resize(c, r);
    }
  }
  if (out) p.term.write(out);
}

// show the screen as it is at playback time t
function seek(t) {
  if (!p.term) return;
  t = Math.max(0, Math.min(t, p.total));
  let target = p.next;
  if (t < p.pos) { p.term.reset(); p.next = 0; target = 0; }
  while (target < p.times.length && p.times[target] <= t) target++;
  apply(p.next, target);
  p.next = target;
  p.pos = t;
  update();
}

function update() {
  const seekbar = document.getElementById("player-seek");
  if (document.activeElement !== seekbar) seekbar.value = String(p.pos);
  seekbar.setAttribute("aria-valuetext", `${fmtDuration(p.pos)} of ${fmtDuration(p.total)}`);
  document.getElementById("player-time").textContent = `${fmtDuration(p.pos)} / ${fmtDuration(p.total)}`;
  document.getElementById("player-play").textContent = p.timer ? "Pause" : "Play";
  document.getElementById("player-status").textContent =
    p.timer ? "playing" : (p.pos >= p.total && p.total > 0 ? "finished" : "paused");
}

function play() {
  if (p.timer || !p.term) return;
  if (p.pos >= p.total) seek(0);
  p.last = performance.now();
  p.timer = setInterval(() => {
    const now = performance.now();
    const speed = Number(document.getElementById("player-speed").value) || 1;
    const t = p.pos + ((now - p.last) / 1000) * speed;
    p.last = now;
    seek(t);
    if (p.pos >= p.total) pause();
  }, TICK_MS);
  update();
}

function pause() {
  if (p.timer) { clearInterval(p.timer); p.timer = null; }
  if (document.getElementById("player-play")) update();
}

function toggle() { if (p.timer) pause(); else play(); }
