// The SSO tests' OpenID Connect provider: panva's oidc-provider, configured from a JSON file
// (argv[2]): {"port": 0, "clients": [{client_id, client_secret, redirect_uris, post_logout_redirect_uris}], "accounts": {id: claims}}.
// Started by sso/tests/oidc_idp.py on 127.0.0.1; prints "listening <issuer>" when ready.
// Interactions: oidc-provider's dev interactions (a login form that signs in the account named in
// `login`, then a consent form), which the tests drive with plain HTTP.
// One deliberate misbehaviour for the tests: an account whose id starts with "wrong-aud-" gets ID tokens
// issued to the first other client (an `aud` that is not the requesting client's).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris || [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['oidc-test-cookie-key'] },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});
provider.proxy = false;

const issue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issueMaybeToAnotherClient(options) {
  if (String(this.available.sub || '').startsWith('wrong-aud-')) {
    const other = config.clients.find((c) => c.client_id !== this.client.clientId);
    this.client = await provider.Client.find(other.client_id);
  }
  return issue.call(this, options);
};

provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
