// A tiny element builder for the pages that build their own markup: text always goes in as
// text nodes (never HTML), so server data cannot inject.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k === "className") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// The section for a page, created on first use inside <main>.
export function section(id, build) {
  let el = document.getElementById(id);
  if (!el) {
    el = build();
    el.id = id;
    el.hidden = true;
    document.querySelector("main").append(el);
  }
  return el;
}

export function fmtTime(unix) {
  if (unix === null || unix === undefined) return "-";
  const d = new Date(unix * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "-";
  const s = Math.round(seconds);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (hh) return `${hh}h${String(mm).padStart(2, "0")}m${String(ss).padStart(2, "0")}s`;
  if (mm) return `${mm}m${String(ss).padStart(2, "0")}s`;
  return `${ss}s`;
}

// A table with a header row; returns [table, tbody].
export function table(id, headers) {
  const body = h("tbody");
  const t = h("table", { id }, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", text: x })))), body);
  return [t, body];
}
