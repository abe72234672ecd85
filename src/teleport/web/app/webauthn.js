// Security keys in the browser: the server's options (JSON, made by py_webauthn) go to
// navigator.credentials as they are, through the browser's own JSON parsers; the answer goes back
// as the browser's toJSON(). No hand-made encoding or checks here: the server verifies.

export function keysSupported() {
  return !!(window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON
    && window.isSecureContext);
}

export function allowsKeys(mode) {
  return ["webauthn", "on", "optional"].includes(mode);
}

export function allowsOtp(mode) {
  return ["otp", "on", "optional"].includes(mode);
}

function explain(err) {
  if (err && err.name === "NotAllowedError") {
    return new Error("the security key request was cancelled or timed out: try again");
  }
  if (err && err.name === "SecurityError") {
    return new Error("this browser refused the security key for this address: open the web UI "
      + "by the proxy's host name (not an IP address)");
  }
  if (err && err.name === "InvalidStateError") {
    return new Error("this security key is already registered");
  }
  return err;
}

// registration: options from the server -> the new key's answer
export async function createKey(options) {
  if (!keysSupported()) throw new Error("this browser does not support security keys (WebAuthn)");
  try {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    const cred = await navigator.credentials.create({ publicKey });
    return cred.toJSON();
  } catch (err) { throw explain(err); }
}

// login: options from the server -> the key's signed answer
export async function useKey(options) {
  if (!keysSupported()) throw new Error("this browser does not support security keys (WebAuthn)");
  try {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
    const cred = await navigator.credentials.get({ publicKey });
    return cred.toJSON();
  } catch (err) { throw explain(err); }
}
