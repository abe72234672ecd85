// Test-only OpenID Connect provider: the certified `oidc-provider` package (npm), configured from
// a JSON file and listening on loopback. Used by tests/integration/test_sso_oidc.py.
//
//   node provider.mjs CONFIG.json
//   CONFIG: {"port": N, "clients": [{client_id, client_secret, redirect_uris}],
//            "accounts": {"ID": {"email": ..., "groups": [...], "logins": [...], "tamper": bool}}}
//
// Sign-in uses the package's development interactions (any password; the login names the
// account), which Chromium completes like any form. For accounts marked "tamper", a middleware
// changes a claim of the signed ID token on its way out of the token endpoint, leaving the
// signature as it was: what an attacker in the middle would do, so that the relying party must
// refuse it.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const issuer = `http://127.0.0.1:${config.port}`;
const accounts = config.accounts || {};

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ["authorization_code"], response_types: ["code"], ...c,
  })),
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        const { tamper, ...claims } = account;
        return { sub: id, ...claims };
      },
    };
  },
  claims: {
    openid: ["sub"], email: ["email", "email_verified"], profile: ["name"],
    groups: ["groups"], logins: ["logins"],
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ["test-only-cookie-key"] },
  ttl: { Session: 600, Interaction: 600, Grant: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== "/token" || !ctx.body || typeof ctx.body.id_token !== "string") return;
  const [head, payload, sig] = ctx.body.id_token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  if (accounts[claims.sub] && accounts[claims.sub].tamper) {
    claims.email = "root@example.com";
    claims.groups = ["admins"];
    ctx.body.id_token = [head, Buffer.from(JSON.stringify(claims)).toString("base64url"), sig].join(".");
  }
});

provider.listen(config.port, "127.0.0.1", () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});
