// Single sign-on buttons on the login page: one per GitHub or OIDC connector the proxy lists in
// /v1/webapi/ping. A button is a plain link to the proxy's login route, which sets this browser's
// binding cookie and redirects to the identity provider; the provider sends the browser back to
// the proxy, which starts the web session. Names reach the page through textContent only.

async function showConnectors() {
  const box = document.getElementById("sso-connectors");
  if (!box) return;
  let ping = null;
  try {
    const resp = await fetch("/v1/webapi/ping", { headers: { Accept: "application/json" } });
    if (!resp.ok) return;
    ping = await resp.json();
  } catch {
    return;
  }
  const connectors = ((ping && ping.auth && ping.auth.connectors) || [])
    .filter((c) => c.kind === "github" || c.kind === "oidc");
  box.replaceChildren();
  if (!connectors.length) {
    box.hidden = true;
    return;
  }
  const heading = document.createElement("p");
  heading.className = "muted";
  heading.textContent = "or";
  box.append(heading);
  for (const c of connectors) {
    const link = document.createElement("a");
    link.className = "button sso-button";
    link.href = `/v1/webapi/${c.kind}/login/web?${new URLSearchParams({ connector_id: c.name })}`;
    link.textContent = `Sign in with ${c.display || c.name}`;
    link.dataset.connector = c.name;
    box.append(link);
  }
  box.hidden = false;
}

showConnectors();
