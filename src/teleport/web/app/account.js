// The account page (/web/account): who and where, the session's expiry, password change (old
// password and second factor), security keys (register, remove), log out.
import { api, fromTemplate } from "./app.js";
import { allowsKeys, createKey, keysSupported, useKey } from "./webauthn.js";

const $ = (id) => document.getElementById(id);

function when(seconds) {
  if (!seconds) return "never";
  return new Date(seconds * 1000).toLocaleString(undefined, {
    dateStyle: "medium", timeStyle: "short" });
}

function say(id, message, ok) {
  $(id).textContent = message || "";
  $(id).className = ok ? "notice" : "error";
  $(id).hidden = !message;
}

export async function showAccount(onEnded) {
  fromTemplate("account-view");
  let info;
  try {
    info = await api("GET", "/v1/webapi/account");
  } catch (err) {
    if (!onEnded(err)) say("account-error", err.message);
    return;
  }
  render(info);
  $("password-form").addEventListener("submit", (e) => changePassword(e, info));
  $("key-form").addEventListener("submit", addKey);
}

function render(info) {
  $("account-user").textContent = info.user;
  $("account-cluster").textContent = info.cluster_name;
  $("account-logins").textContent = (info.logins || []).join(", ") || "none";
  const idle = Math.round((info.idle_timeout || 0) / 60);
  $("account-expires").textContent =
    `${when(info.session_expires)} (or after ${idle} minutes without use)`;
  $("account-certs").textContent =
    `each terminal gets its own certificate, valid ${Math.round(info.terminal_cert_ttl / 60)} minutes`;
  const factors = [];
  if (info.totp) factors.push("one-time code app");
  if (info.devices.length) factors.push(`${info.devices.length} security key(s)`);
  $("account-factor").textContent = factors.join(", ") || "none";
  // the code is asked when the user has one; a key otherwise
  $("password-otp-row").hidden = !info.totp;
  $("password-key-note").hidden = info.totp || !info.devices.length;
  const keysAllowed = allowsKeys(info.second_factor);
  $("keys-section").hidden = !keysAllowed;
  const body = $("keys-table").querySelector("tbody");
  body.replaceChildren();
  for (const d of info.devices) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = d.name;
    const added = document.createElement("td");
    added.textContent = when(d.added);
    const used = document.createElement("td");
    used.textContent = d.last_used ? when(d.last_used) : "not yet";
    const action = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove key ${d.name}`);
    remove.addEventListener("click", () => removeKey(d));
    action.append(remove);
    tr.append(name, added, used, action);
    body.append(tr);
  }
  $("keys-empty").hidden = info.devices.length > 0;
}

async function reload() {
  render(await api("GET", "/v1/webapi/account"));
}

async function changePassword(event, info) {
  event.preventDefault();
  say("password-status", "");
  const old = $("password-old").value;
  const fresh = $("password-new").value;
  if (fresh !== $("password-new2").value) {
    say("password-status", "The new passwords do not match.");
    return;
  }
  const body = { old_password: old, new_password: fresh };
  try {
    if (info.totp) {
      body.otp_code = $("password-otp").value.trim();
    } else if (info.devices.length) {
      // the key signs a challenge begun with the old password
      const begin = await api("POST", "/v1/webapi/webauthn/login/begin", { user: info.user, password: old });
      body.webauthn = { challenge_id: begin.challenge_id, credential: await useKey(begin.options) };
    }
    await api("PUT", "/v1/webapi/account/password", body);
    event.target.reset();
    say("password-status", "Your password was changed.", true);
    await reload();  // a key that confirmed it was just used
  } catch (err) {
    say("password-status", err.message);
  }
}

async function addKey(event) {
  event.preventDefault();
  say("key-status", "");
  try {
    if (!keysSupported()) throw new Error("this browser does not support security keys here");
    const begin = await api("POST", "/v1/webapi/account/keys/begin", {});
    const credential = await createKey(begin.options);
    const added = await api("POST", "/v1/webapi/account/keys", {
      password: $("key-password").value,
      webauthn: { challenge_id: begin.challenge_id, credential, name: $("key-name").value },
    });
    event.target.reset();
    say("key-status", `Security key "${added.name}" registered.`, true);
    await reload();
  } catch (err) {
    say("key-status", err.message);
  }
}

async function removeKey(device) {
  say("key-status", "");
  const password = $("key-password").value;
  if (!password) {
    say("key-status", "Enter your password above to remove a key.");
    $("key-password").focus();
    return;
  }
  try {
    await api("DELETE", "/v1/webapi/account/keys", { id: device.id, password });
    say("key-status", `Security key "${device.name}" removed.`, true);
    await reload();
  } catch (err) {
    say("key-status", err.message);
  }
}
