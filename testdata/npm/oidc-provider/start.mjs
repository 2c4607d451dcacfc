// Starts a real OpenID Connect provider (the oidc-provider package) for the
// ingress tests, bound to 127.0.0.1 only, on PORT (0 or unset: a free port
// the kernel picks). Once listening it prints "MCPGW_LISTENING <host:port>"
// on stderr, which the Go tests (auth/authtest) wait for.
//
// MCPGW_OIDC_CONFIG is JSON:
//   {"clients":   [{"client_id": "...", "client_secret": "...", "groups": ["..."], "scope": "..."}],
//    "resources": ["http://127.0.0.1/mcpgw"],   // resource indicators = JWT audiences
//    "scopes":    ["mcp:read"]}                   // scopes the resources grant
// Clients use the client_credentials grant; with a resource indicator (RFC
// 8707) the access token is a JWT (typ at+jwt) for that audience, carrying
// the client's groups in a "groups" claim.
//
// For the web UI's sign-in (authorization code with PKCE) the config may add
//   "web_clients": [{"client_id": "...", "client_secret": "..." (none: a public client),
//                    "redirect_uris": ["http://127.0.0.1:<port>/ui/callback"]}],
//   "users":       {"alice": {"groups": ["..."], "claims": {...}}}
// which turns on the provider's development login pages (devInteractions:
// any login name and password sign in, then a consent page). A user's
// groups and extra claims go into the access tokens issued for them.
import crypto from "node:crypto";
import http from "node:http";
import Provider, { errors } from "oidc-provider";

const cfg = JSON.parse(process.env.MCPGW_OIDC_CONFIG || "{}");
const clients = cfg.clients || [];
const resources = new Set(cfg.resources || []);
const scopes = cfg.scopes || [];
const webClients = cfg.web_clients || [];
const users = cfg.users || {};
const port = Number(process.env.PORT || 0);

const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-" + crypto.randomBytes(4).toString("hex"), use: "sig", alg: "RS256" };

const server = http.createServer();
server.listen(port, "127.0.0.1", () => {
  const { address, port: bound } = server.address();
  const issuer = `http://${address}:${bound}`;
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: c.auth_method || "client_secret_basic",
      scope: c.scope || scopes.join(" "),
    })).concat(webClients.map((c) => ({
      client_id: c.client_id,
      ...(c.client_secret
        ? { client_secret: c.client_secret, token_endpoint_auth_method: "client_secret_basic" }
        : { token_endpoint_auth_method: "none" }),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: c.redirect_uris || [],
      scope: ["openid", ...scopes].join(" "),
    }))),
    jwks: { keys: [jwk] },
    scopes: ["openid", ...scopes],
    features: {
      devInteractions: { enabled: webClients.length > 0 },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (!resources.has(indicator)) throw new errors.InvalidTarget();
          return {
            scope: scopes.join(" "),
            audience: indicator,
            accessTokenTTL: 300,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
    // Web clients always send PKCE (S256), public or not.
    pkce: { required: (_ctx, client) => webClients.some((c) => c.client_id === client.clientId) },
    extraTokenClaims: (_ctx, token) => {
      if (token.accountId) {
        const u = users[token.accountId];
        return u ? { ...(u.claims || {}), ...(u.groups ? { groups: u.groups } : {}) } : undefined;
      }
      const c = clients.find((x) => x.client_id === token.clientId);
      return c && c.groups ? { groups: c.groups } : undefined;
    },
  });
  provider.proxy = false;
  server.on("request", provider.callback());
  process.stderr.write(`MCPGW_LISTENING ${address}:${bound}\n`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  // closeAllConnections: a browser's idle keep-alive connections must not
  // hold the exit up.
  process.on(sig, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
}
