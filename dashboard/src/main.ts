// The admin dashboard: polls the admin API (/api/snapshot, /api/routes, /api/upstreams) every
// POLL_MS and redraws the tables. No framework; data goes into the DOM as text only.
import type { BackendView, WindowStats } from '../../gateway/stats.ts';
import './style.css';

const POLL_MS = 1500;
const TOKEN_KEY = 'causeway.adminToken';

interface RouteRow {
  name: string;
  match: Array<{ host: string; path: string }>;
  policies: string[];
  total: { requests: number; status4xx: number; status5xx: number };
  window: WindowStats;
  backends: BackendView[];
  answeredByGateway: number;
  migration: null | { stage?: string };
}

interface RoutesAnswer {
  version: string;
  windowSeconds: number;
  routes: RouteRow[];
  unmatched: { total: number; window: WindowStats };
}

interface UpstreamsAnswer {
  upstreams: Array<{
    name: string;
    routes: string[];
    endpoints: Array<{ url: string; ejected: boolean; ejectedForMs: number; connectFailures: number; inflight: number | null; connections: number | null }>;
  }>;
}

interface SnapshotAnswer {
  version: string;
  loadedAt: string;
  reloads: number;
  reloadFailures: number;
  inflight: number;
}

// A token from ?token= goes to sessionStorage and leaves the address bar (and the history).
const params = new URLSearchParams(location.search);
const fromUrl = params.get('token');
if (fromUrl) {
  sessionStorage.setItem(TOKEN_KEY, fromUrl);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
}

class Unauthorized extends Error {}

async function api<T>(path: string): Promise<T> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

const rate = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const pct = (share: number | null): string => (share === null ? '–' : `${(share * 100).toFixed(share < 0.1 && share > 0 ? 1 : 0)}%`);
const ms = (v: number | null): string => (v === null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);

function num(field: string, text: string, cls = ''): HTMLTableCellElement {
  return el('td', { 'data-field': field, class: `num ${cls}`.trim() }, text);
}

function errorClass(share: number): string {
  return share >= 0.05 ? 'bad' : share > 0 ? 'warn' : '';
}

function bar(share: number | null, kind: 'actual' | 'configured'): HTMLElement {
  const b = el('span', { class: `bar ${kind}` });
  b.style.width = `${Math.round((share ?? 0) * 100)}%`;
  return el('span', { class: 'track' }, b);
}

function renderRoutes(r: RoutesAnswer): void {
  $('window').textContent = `rates over the last ${Math.round(r.windowSeconds)} s`;
  const body = ($('routes') as HTMLTableElement).tBodies[0]!;
  const rows = r.routes.map((route) => {
    const backends = el('td', { 'data-field': 'backends' });
    for (const b of route.backends) {
      backends.append(el('span', { class: 'backend', 'data-backend': b.upstream }, `${b.upstream} `, el('b', {}, pct(b.actualShare))));
    }
    return el(
      'tr',
      { 'data-route': route.name },
      el('td', { 'data-field': 'name', class: 'name' }, route.name),
      el('td', { 'data-field': 'match', class: 'match' }, route.match.map((m) => (m.host === '*' ? m.path : `${m.host}${m.path}`)).join(', ')),
      num('rate', rate(route.window.rate)),
      num('5xx', pct(route.window.errorRate5xx), errorClass(route.window.errorRate5xx)),
      num('4xx', pct(route.window.errorRate4xx)),
      num('p50', ms(route.window.p50Ms)),
      num('p99', ms(route.window.p99Ms)),
      num('total', String(route.total.requests)),
      backends,
    );
  });
  body.replaceChildren(...rows);
  $('unmatched').textContent = r.unmatched.total > 0 ? `${r.unmatched.total} requests matched no route (${rate(r.unmatched.window.rate)}/s now)` : '';

  const mig = ($('migration') as HTMLTableElement).tBodies[0]!;
  const migRows: HTMLTableRowElement[] = [];
  for (const route of r.routes) {
    route.backends.forEach((b, i) => {
      const tr = el(
        'tr',
        { 'data-route': route.name, 'data-backend': b.upstream, class: i === 0 ? 'first' : '' },
        el('td', { class: 'name' }, i === 0 ? route.name : ''),
        el('td', {}, b.upstream),
        el('td', { 'data-field': 'configured', class: 'share' }, bar(b.configuredShare, 'configured'), ` ${pct(b.configuredShare)}`),
        el('td', { 'data-field': 'actual', class: 'share' }, bar(b.actualShare, 'actual'), ` ${pct(b.actualShare)}`),
        num('rate', rate(b.window.rate)),
        num('5xx', pct(b.window.errorRate5xx), errorClass(b.window.errorRate5xx)),
        num('p99', ms(b.window.p99Ms)),
        el('td', { 'data-field': 'rollout', class: 'muted' }, i === 0 ? (route.migration?.stage ?? 'no rollout') : ''),
      );
      migRows.push(tr);
    });
  }
  mig.replaceChildren(...migRows);
}

function renderUpstreams(u: UpstreamsAnswer): void {
  const body = ($('upstreams') as HTMLTableElement).tBodies[0]!;
  const rows: HTMLTableRowElement[] = [];
  for (const up of u.upstreams) {
    up.endpoints.forEach((e, i) => {
      rows.push(
        el(
          'tr',
          { 'data-upstream': up.name, 'data-endpoint': e.url },
          el('td', { class: 'name' }, i === 0 ? up.name : ''),
          el('td', {}, e.url),
          el('td', { 'data-field': 'state' }, el('span', { class: `pill ${e.ejected ? 'bad' : 'ok'}` }, e.ejected ? `ejected ${Math.ceil(e.ejectedForMs / 1000)} s` : 'healthy')),
          num('connectFailures', String(e.connectFailures), e.connectFailures > 0 ? 'warn' : ''),
          num('inflight', e.inflight === null ? '–' : String(e.inflight)),
          num('connections', e.connections === null ? '–' : String(e.connections)),
          el('td', { class: 'muted' }, i === 0 ? up.routes.join(', ') : ''),
        ),
      );
    });
  }
  body.replaceChildren(...rows);
}

function renderSnapshot(s: SnapshotAnswer): void {
  $('snap-version').textContent = s.version;
  $('snap-loaded').textContent = new Date(s.loadedAt).toLocaleTimeString();
  $('snap-reloads').textContent = s.reloadFailures > 0 ? `${s.reloads} (${s.reloadFailures} rejected)` : String(s.reloads);
  $('snap-inflight').textContent = String(s.inflight);
}

let polls = 0;

async function poll(): Promise<void> {
  try {
    const [snap, routes, ups] = await Promise.all([api<SnapshotAnswer>('/api/snapshot'), api<RoutesAnswer>('/api/routes'), api<UpstreamsAnswer>('/api/upstreams')]);
    renderSnapshot(snap);
    renderRoutes(routes);
    renderUpstreams(ups);
    $('auth').hidden = true;
    polls++;
    const status = $('status');
    status.className = 'status ok';
    status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    status.dataset.polls = String(polls);
  } catch (err) {
    const status = $('status');
    status.className = 'status bad';
    if (err instanceof Unauthorized) {
      $('auth').hidden = false;
      status.textContent = 'the admin API needs a token';
    } else {
      status.textContent = `cannot reach the admin API (${(err as Error).message}); retrying`;
    }
  } finally {
    setTimeout(() => void poll(), POLL_MS);
  }
}

$('auth-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const v = ($('auth-token') as HTMLInputElement).value.trim();
  if (v) sessionStorage.setItem(TOKEN_KEY, v);
  ($('auth-token') as HTMLInputElement).value = '';
});

void poll();
