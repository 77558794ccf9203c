// Config files for the upstream and every proxy, generated into the run's temporary directory.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/** The cheap upstream's small answer: about 100 bytes of JSON. */
export const SMALL_BODY = '{"id":42,"name":"causeway-bench","tags":["a","b","c"],"price":12.5,"stock":true,"updated":"2026-11-25"}';
export const LARGE_BODY_BYTES = 64 * 1024;
/** Path every small-body request uses; every target serves it from the upstream's `location /`. */
export const SMALL_PATH = '/bench/items/42';
export const LARGE_PATH = '/large/64k.json';

function nginxCommon(dir: string): string {
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  return `daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 10000; multi_accept on; }
`;
}

function nginxHttpCommon(dir: string): string {
  const tmp = join(dir, 'tmp');
  return `  access_log off;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  server_tokens off;
`;
}

/** The upstream: nginx, 1 worker, `return 200` with SMALL_BODY, and a 64 KiB static file. */
export function upstreamNginxConf(dir: string, port: number): string {
  mkdirSync(dir, { recursive: true });
  const large = join(dir, 'large');
  mkdirSync(large, { recursive: true });
  const filler = 'x'.repeat(LARGE_BODY_BYTES - '{"data":""}'.length);
  writeFileSync(join(large, '64k.json'), `{"data":"${filler}"}`);
  const conf = `${nginxCommon(dir)}http {
${nginxHttpCommon(dir)}  sendfile on;
  tcp_nopush on;
  open_file_cache max=100 inactive=600s;
  open_file_cache_valid 600s;
  server {
    listen 127.0.0.1:${port} reuseport backlog=4096;
    location / {
      default_type application/json;
      return 200 '${SMALL_BODY}';
    }
    location /large/ {
      default_type application/json;
      alias ${large}/;
    }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}

/** nginx as a reverse proxy: proxy_pass to an upstream block with keepalive connections. */
export function proxyNginxConf(dir: string, port: number, upstreamPort: number): string {
  mkdirSync(dir, { recursive: true });
  const conf = `${nginxCommon(dir)}http {
${nginxHttpCommon(dir)}  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # 64 KiB answers fit in memory (the defaults would spill them to a temp file).
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
    }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}

/** HAProxy, one thread, HTTP mode, server connections reused across clients, no logs. */
export function haproxyConf(dir: string, port: number, upstreamPort: number): string {
  mkdirSync(dir, { recursive: true });
  const conf = `global
  nbthread 1
  maxconn 4000

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 75s
  timeout server 75s
  timeout http-keep-alive 75s

frontend fe
  bind 127.0.0.1:${port}
  default_backend be

backend be
  server up 127.0.0.1:${upstreamPort}
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, conf);
  return file;
}

export interface JwtSetup {
  /** Policy fields for the gateway's jwt policy (key source, issuer, audience, algorithms). */
  policy: Record<string, unknown>;
  /** Environment the gateway needs (the HS256 secret). */
  env: Record<string, string>;
  token: string;
  alg: 'RS256' | 'HS256';
}

const ISSUER = 'https://idp.bench.causeway.local/';
const AUDIENCE = 'bench-api';

/** A key, the gateway's jwt policy for it, and one token signed with jose, valid for 3 hours. */
export async function jwtSetup(dir: string, alg: 'RS256' | 'HS256'): Promise<JwtSetup> {
  const claims = { scope: 'bench:read bench:write', roles: ['tester'] };
  const sign = (key: Parameters<SignJWT['sign']>[0], kid?: string): Promise<string> =>
    new SignJWT(claims)
      .setProtectedHeader(kid ? { alg, kid, typ: 'JWT' } : { alg, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('bench-user')
      .setIssuedAt()
      .setExpirationTime('3h')
      .sign(key);
  if (alg === 'HS256') {
    const secret = randomBytes(36).toString('base64url');
    return {
      policy: { issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['HS256'], secret: '${BENCH_JWT_SECRET}' },
      env: { BENCH_JWT_SECRET: secret },
      token: await sign(new TextEncoder().encode(secret)),
      alg,
    };
  }
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
  const file = join(dir, 'jwks.json');
  writeFileSync(file, JSON.stringify({ keys: [jwk] }));
  return {
    policy: { issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['RS256'], jwksFile: file },
    env: {},
    token: await sign(privateKey, 'bench-1'),
    alg,
  };
}

export type GatewayVariant =
  | { kind: 'plain' }
  | { kind: 'routes'; count: number }
  | { kind: 'policies'; set: 'jwt+rateLimit' | 'five' };

/**
 * Routes other than the one measured, in every shape the route table supports: prefixes, path
 * patterns with parameters, header predicates, regexes (one in five) and host-bound routes. None
 * matches SMALL_PATH; the measured request falls through to the catch-all, the least specific
 * route, which a linear scan would reach last.
 */
function generatedRoutes(count: number): Array<Record<string, unknown>> {
  const routes: Array<Record<string, unknown>> = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${i}`;
    switch (i % 5) {
      case 0:
        routes.push({ name, match: { prefix: `/svc${i}` }, upstream: 'up' });
        break;
      case 1:
        routes.push({ name, match: { path: `/api/v1/svc${i}/users/:id`, methods: ['GET', 'PUT'] }, upstream: 'up' });
        break;
      case 2:
        routes.push({ name, match: { prefix: `/api/v2/svc${i}/orders`, headers: { 'x-tenant': `t${i}` } }, upstream: 'up' });
        break;
      case 3:
        routes.push({ name, match: { regex: `^/api/v3/svc${i}/items/[0-9]+$` }, upstream: 'up' });
        break;
      default:
        routes.push({ name, match: { host: `svc${i}.internal.example.com`, prefix: '/api' }, upstream: 'up' });
    }
  }
  return routes;
}

/** A Causeway gateway config (JSON) for one variant. */
export function gatewayConf(
  dir: string,
  name: string,
  port: number,
  adminPort: number,
  upstreamPort: number,
  variant: GatewayVariant,
  jwt: JwtSetup | null,
): string {
  mkdirSync(dir, { recursive: true });
  const catchAll: Record<string, unknown> = { name: 'all', match: { prefix: '/' }, upstream: 'up' };
  const config: Record<string, unknown> = {
    gateway: { listen: { host: '127.0.0.1', port } },
    admin: { listen: { host: '127.0.0.1', port: adminPort } },
    upstreams: { up: { endpoints: [`http://127.0.0.1:${upstreamPort}`] } },
    routes: [catchAll],
  };
  if (variant.kind === 'routes') {
    config.routes = [...generatedRoutes(variant.count - 1), catchAll];
  } else if (variant.kind === 'policies') {
    if (!jwt) throw new Error('policies need a jwt setup');
    const policies: Record<string, unknown> = {
      'bench-jwt': { jwt: jwt.policy },
      // Never triggers: the point is the cost of counting, not of refusing.
      'bench-limit': { rateLimit: { key: ['ip'], store: 'memory', limits: [{ requests: 1_000_000_000, per: '1s' }] } },
    };
    if (variant.set === 'five') {
      policies['bench-cors'] = { cors: { origins: ['https://app.example.com'] } };
      policies['bench-methods'] = { methods: ['GET', 'HEAD', 'POST'] };
      policies['bench-authz'] = { authz: { allow: [{ authenticated: true, anyScopes: ['bench:read'] }] } };
    }
    config.policies = policies;
    catchAll.policies = Object.keys(policies);
  }
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}
