// Sign up from an invite (/web/invite/<token>): who is invited, a password (checked as it is
// typed), the one-time code's QR code and secret and/or a security key, then logged in.
import { api, fromTemplate, setError, loggedIn } from "./app.js";
import { allowsKeys, allowsOtp, createKey, keysSupported } from "./webauthn.js";

const $ = (id) => document.getElementById(id);

export function inviteToken() {
  const m = location.pathname.match(/^\/web\/invite\/([^/]+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

export async function startSignup(token) {
  const view = fromTemplate("signup-view");
  let invite;
  try {
    invite = await api("GET", `/v1/webapi/users/invites/${encodeURIComponent(token)}`);
  } catch (err) {
    $("signup-form").hidden = true;
    $("signup-bad").hidden = false;
    $("signup-bad-message").textContent = err.status === 404 || err.status === 400
      ? "This invite link has expired, was already used, or is not valid."
      : `The invite could not be read: ${err.message}`;
    $("signup-title").textContent = "Invite not valid";
    return;
  }
  const mode = invite.second_factor;
  const minLength = invite.min_password_length || 6;
  $("signup-user").textContent = invite.user;
  $("signup-logins").textContent = (invite.logins || []).join(", ") || "none";
  $("signup-roles").textContent = (invite.roles || []).join(", ");
  $("signup-hint").textContent = `At least ${minLength} characters.`;
  const otpWanted = allowsOtp(mode) && invite.otp_secret;
  $("signup-otp").hidden = !otpWanted;
  if (otpWanted) {
    $("signup-qr").src = invite.otp_qr;
    $("signup-secret").textContent = invite.otp_secret;
  }
  const keyWanted = allowsKeys(mode);
  $("signup-key").hidden = !keyWanted;
  $("signup-key-intro").textContent = mode === "webauthn"
    ? "This cluster uses security keys: register yours to finish."
    : "You may also register a security key (instead of the code, or as well).";
  let key = null;

  function checkPasswords() {
    const a = $("signup-password").value;
    const b = $("signup-password2").value;
    let msg = "";
    if (a.length && a.length < minLength) msg = `Too short: ${a.length} of at least ${minLength} characters.`;
    else if (b.length && a !== b) msg = "The passwords do not match.";
    $("signup-hint").textContent = msg || (a.length ? "Password length is fine." : `At least ${minLength} characters.`);
    $("signup-hint").className = msg ? "hint error" : "hint";
    return !msg && a.length >= minLength && a === b;
  }
  $("signup-password").addEventListener("input", checkPasswords);
  $("signup-password2").addEventListener("input", checkPasswords);

  $("signup-key-button").addEventListener("click", async () => {
    setError("signup-error", "");
    try {
      if (!keysSupported()) throw new Error("this browser does not support security keys here");
      const begin = await api("POST", `/v1/webapi/users/invites/${encodeURIComponent(token)}/webauthn`, {});
      const credential = await createKey(begin.options);
      key = { challenge_id: begin.challenge_id, credential, name: $("signup-key-name").value };
      $("signup-key-status").textContent = "Security key ready: it is saved when you create the account.";
    } catch (err) {
      setError("signup-error", err.message);
    }
  });

  $("signup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    setError("signup-error", "");
    if (!checkPasswords()) {
      setError("signup-error", $("signup-hint").textContent || "Enter the password twice.");
      return;
    }
    const body = { invite_token: token, password: $("signup-password").value };
    if (otpWanted) body.otp_code = $("signup-otp-code").value.trim();
    if (key) body.webauthn = key;
    try {
      const session = await api("POST", "/v1/webapi/signup", body);
      history.replaceState(null, "", "/web");
      view.replaceChildren();
      await loggedIn(session);
    } catch (err) {
      const hint = err.status === 404 ? " Ask your administrator for a new invite." : "";
      setError("signup-error", err.message + hint);
      if (key) {  // its challenge is used up: the key must answer a new one
        key = null;
        $("signup-key-status").textContent = "Register the security key again.";
      }
    }
  });
  $("signup-password").focus();
}
