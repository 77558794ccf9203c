// The dashboard's static files (built by Vite from dashboard/ into dist/dashboard/), served by
// the admin listener from a fixed map read once at start: no path from a request ever reaches
// the file system, so there is nothing to traverse.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { GATEWAY_ERRORS } from './errors.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

interface StaticFile {
  body: Buffer;
  type: string;
  /** Vite's hashed assets never change under one name. */
  immutable: boolean;
}

/**
 * The page only talks to its own origin; the token may arrive in ?token= and must not leak in a
 * Referer, and the page is not to be framed.
 */
const HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
};

/**
 * Where the built dashboard is: dist/dashboard/ when running from the sources (gateway/), or
 * beside dist/gateway/ when running the compiled code. A build has an assets/ folder (the
 * sources in dashboard/ do not).
 */
export function dashboardDir(): string | null {
  for (const rel of ['../dist/dashboard/', '../dashboard/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, 'index.html')) && existsSync(join(dir, 'assets'))) return dir;
  }
  return null;
}

/** Every file under dir, by URL path under /dashboard/. */
export function loadDashboard(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (sub: string): void => {
    for (const name of readdirSync(join(dir, sub))) {
      const rel = sub === '' ? name : `${sub}/${name}`;
      const full = join(dir, rel);
      if (statSync(full).isDirectory()) {
        walk(rel);
        continue;
      }
      const type = TYPES[extname(name).toLowerCase()];
      if (type === undefined) continue;
      files.set(rel, { body: readFileSync(full), type, immutable: rel.startsWith('assets/') });
    }
  };
  walk('');
  return files;
}

export function registerDashboard(app: FastifyInstance, dir: string | null = dashboardDir()): void {
  const files = dir === null ? null : loadDashboard(dir);
  const send = (reply: FastifyReply, rel: string) => {
    if (files === null || !files.has('index.html')) {
      return reply.code(503).header('cache-control', 'no-store').send({ error: { code: 'CW_DASHBOARD_NOT_BUILT', message: GATEWAY_ERRORS.CW_DASHBOARD_NOT_BUILT.message } });
    }
    const f = files.get(rel);
    if (f === undefined) {
      return reply.code(404).send({ error: { code: 'CW_ADMIN_NOT_FOUND', message: `no dashboard file ${JSON.stringify(rel)}` } });
    }
    return reply
      .headers(HEADERS)
      .header('content-type', f.type)
      .header('cache-control', f.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(f.body);
  };
  app.get('/', async (_req, reply) => reply.redirect('/dashboard/', 302));
  app.get('/dashboard', async (_req, reply) => reply.redirect('/dashboard/', 301));
  app.get('/dashboard/', async (_req, reply) => send(reply, 'index.html'));
  app.get('/dashboard/*', async (req, reply) => send(reply, (req.params as { '*': string })['*']));
}
