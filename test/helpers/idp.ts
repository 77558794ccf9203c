// A real identity provider for tests: an HTTP server on 127.0.0.1 (port 0) serving a JWKS,
// with keys made by jose. It can rotate keys, stop and start again on the same port, stop
// answering (hang) or fail, counts JWKS fetches and records any request for another URL (a
// gateway must never follow a token's jku/x5u). Stopped in t.teardown.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ExecutionContext } from 'ava';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type IdpAlg = 'RS256' | 'ES256' | 'PS256' | 'EdDSA';

export interface IdpKey {
  kid: string;
  alg: IdpAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  /** SPKI PEM of the public key. */
  publicPem: string;
}

export interface SignOptions {
  /** Sign with this key (default: the IdP's current key). */
  key?: IdpKey;
  /** Extra or replaced protected-header parameters; `kid: undefined` removes the kid. */
  header?: Record<string, unknown>;
}

export interface TestIdp {
  /** http://127.0.0.1:port */
  url: string;
  /** The JWKS URL. */
  jwksUri: string;
  /** The `iss` of the tokens it signs. */
  issuer: string;
  port: number;
  /** JWKS requests answered (or left hanging). */
  fetches: number;
  /** Every request for a URL other than the JWKS. */
  otherRequests: string[];
  /** ok: serve the JWKS; hang: accept and never answer; error: 500. */
  mode: 'ok' | 'hang' | 'error';
  /** Keys published in the JWKS; the last one signs by default. */
  keys: IdpKey[];
  readonly current: IdpKey;
  /** A new key that signs from now on; `keep` leaves the old ones published. */
  rotate(opts?: { keep?: boolean }): Promise<IdpKey>;
  /** A token with default claims (iss, aud "api", sub "user-1", iat, exp +5m) overridden by `claims` (undefined removes one). */
  sign(claims?: Record<string, unknown>, opts?: SignOptions): Promise<string>;
  stop(): Promise<void>;
  /** Listen again on the same port. */
  start(): Promise<void>;
  /** Resolve once `n` JWKS fetches have been seen. */
  waitForFetches(n: number): Promise<void>;
}

let counter = 0;

export async function makeKey(alg: IdpAlg = 'RS256', kid = `key-${++counter}`): Promise<IdpKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

export async function signWith(key: IdpKey | Uint8Array, payload: JWTPayload, header: Record<string, unknown>): Promise<string> {
  const h = Object.fromEntries(Object.entries(header).filter(([, v]) => v !== undefined));
  return new SignJWT(payload).setProtectedHeader(h as { alg: string }).sign(key instanceof Uint8Array ? key : key.privateKey);
}

export async function startIdp(t: ExecutionContext, opts: { alg?: IdpAlg; path?: string } = {}): Promise<TestIdp> {
  const alg = opts.alg ?? 'RS256';
  const path = opts.path ?? '/.well-known/jwks.json';
  const sockets = new Set<Socket>();
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  let server: Server | null = null;
  let port = 0;

  const idp: TestIdp = {
    url: '',
    jwksUri: '',
    issuer: '',
    port: 0,
    fetches: 0,
    otherRequests: [],
    mode: 'ok',
    keys: [await makeKey(alg)],
    get current() {
      return this.keys[this.keys.length - 1]!;
    },
    async rotate({ keep = false } = {}) {
      const k = await makeKey(alg);
      this.keys = keep ? [...this.keys, k] : [k];
      return k;
    },
    async sign(claims = {}, o = {}) {
      const key = o.key ?? this.current;
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = { iss: this.issuer, aud: 'api', sub: 'user-1', iat: now, exp: now + 300 };
      for (const [k, v] of Object.entries(claims)) {
        if (v === undefined) delete payload[k];
        else payload[k] = v;
      }
      return signWith(key, payload, { alg: key.alg, kid: key.kid, ...o.header });
    },
    async stop() {
      const s = server;
      server = null;
      if (s === null) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        for (const sock of sockets) sock.destroy();
        s.closeAllConnections();
      });
    },
    async start() {
      if (server !== null) return;
      const s = createServer((req, res) => {
        const url = req.url ?? '';
        if (req.method !== 'GET' || url.split('?')[0] !== path) {
          idp.otherRequests.push(url);
          res.writeHead(404).end();
          return;
        }
        idp.fetches++;
        for (const w of [...waiters]) {
          if (idp.fetches >= w.n) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
        }
        if (idp.mode === 'hang') return; // never answer
        if (idp.mode === 'error') {
          res.writeHead(500, { 'content-type': 'text/plain' }).end('down');
          return;
        }
        const body = JSON.stringify({ keys: idp.keys.map((k) => k.publicJwk) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      });
      s.on('connection', (sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      server = s;
      port = (s.address() as AddressInfo).port;
      idp.port = port;
      idp.url = `http://127.0.0.1:${port}`;
      idp.jwksUri = `${idp.url}${path}`;
      idp.issuer = `${idp.url}/`;
    },
    waitForFetches(n) {
      if (idp.fetches >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
  await idp.start();
  t.teardown(() => idp.stop());
  return idp;
}
