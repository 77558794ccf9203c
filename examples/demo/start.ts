// `npm start`: the whole demo in one terminal. Starts the monolith, the orders service and the
// gateway (`causeway gateway -c examples/demo`) as child processes, waits until each listens,
// prints what to try, and stops everything on Ctrl-C.
//
// Ports come from CAUSEWAY_PORT (8080), CAUSEWAY_ADMIN_PORT (9901), MONOLITH_PORT (3001) and
// ORDERS_PORT (3002); the gateway config reads the same variables.
//
// Works compiled (node dist/examples/demo/start.js runs dist/**/*.js) and from source
// (tsx examples/demo/start.ts runs the .ts files through tsx).
import { existsSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatLogLine } from './log-format.ts';
import { portIsFree, Supervisor, type ChildFailure, type ChildSpec } from './supervisor.ts';

const here = fileURLToPath(import.meta.url);
const ext = extname(here); // ".js" compiled, ".ts" under tsx
const fromSource = ext === '.ts';

/** The package root: the nearest folder upwards that holds package.json. */
function findPackageRoot(start: string): string {
  for (let dir = start; ; ) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
}

const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number, text: string) => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);
const COLORS: Record<string, number> = { gateway: 36, monolith: 33, 'orders-service': 35, start: 32 };
const prefix = (name: string) => paint(COLORS[name] ?? 0, `[${name}]`);
const say = (message: string) => console.log(`${prefix('start')} ${message}`);
const complain = (message: string) => console.error(`${prefix('start')} ${message}`);

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
    complain(`${name} must be a port number from 1 to 65535, got ${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return Number(raw);
}

function banner(ports: { gateway: number; admin: number; monolith: number; orders: number }, configDir: string): string {
  const gw = `localhost:${ports.gateway}`;
  const admin = `localhost:${ports.admin}`;
  // [command, comment]; comments are lined up after the longest command of their block.
  const block = (rows: Array<[string, string]>) => {
    const width = Math.max(...rows.filter(([, note]) => note).map(([cmd]) => cmd.length));
    return rows.map(([cmd, note]) => `  ${note ? `${cmd.padEnd(width)}   # ${note}` : cmd}`);
  };
  const lines = [
    '',
    paint(1, 'Causeway demo is up.'),
    `  gateway   http://${gw}   (config: ${configDir})`,
    `  admin     http://${admin}   (local only)   dashboard: http://${admin}/dashboard/`,
    `  monolith  http://localhost:${ports.monolith}   orders-service http://localhost:${ports.orders}`,
    '',
    'Try, through the gateway:',
    ...block([
      [`curl ${gw}/`, `the monolith's index (route "monolith", the catch-all)`],
      [`curl ${gw}/users/1`, 'a user, still served by the monolith'],
      [`curl -i ${gw}/orders`, 'migrated: x-served-by: orders-service'],
      [`curl -i -X POST ${gw}/orders -H 'content-type: application/json' -d '{"userId":1,"items":[{"sku":"KB-101","quantity":1}]}'`, '401: writes need an API key'],
      [`curl -i -X POST ${gw}/orders -H 'x-api-key: demo-key-0123456789abcdef' -H 'content-type: application/json' -d '{"userId":1,"items":[{"sku":"KB-101","quantity":1}]}'`, '201, with the key'],
      [`curl -H 'x-preview: 1' ${gw}/users/1`, 'header routing: route "users-v2-preview" adds "preview"'],
      [`curl ${gw}/api/catalog/KB-101`, 'path rewrite: /api/catalog/... is /catalog/... upstream'],
      [`curl -i ${gw}/api/catalog`, 'rate limited: RateLimit headers; the 6th call in 10 s gets 429'],
      [`curl ${gw}/debug/request`, 'what the monolith received: X-Forwarded-For, X-Request-Id, ...'],
      [`curl -i localhost:${ports.monolith}/orders`, "compare: the monolith's own, legacy orders"],
    ]),
    '',
    'Admin API:',
    ...block([
      [`curl ${admin}/healthz`, 'alive'],
      [`curl ${admin}/readyz`, 'ready for traffic'],
      [`curl ${admin}/config`, 'the running config'],
      [`curl ${admin}/api/routes`, 'live figures per route: req/s, error rates, p50/p99, backend shares'],
      [`curl -X POST ${admin}/reload`, `after editing ${join(configDir, 'routes.yaml')}`],
    ]),
    '',
    paint(1, 'Ctrl-C stops everything.'),
    '',
  ];
  return lines.join('\n');
}

function reportFailure(failure: ChildFailure): void {
  const when = failure.wasReady ? 'stopped unexpectedly' : 'failed to start';
  complain(`${failure.name} ${when}: it ${failure.reason}.`);
  if (failure.tail.length > 0) {
    complain(`last output from ${failure.name}:`);
    for (const line of failure.tail) console.error(`    ${formatLogLine(line).replace(/\n/g, '\n    ')}`);
  } else {
    complain(`${failure.name} wrote nothing.`);
  }
}

async function main(): Promise<void> {
  const root = findPackageRoot(dirname(here));
  const configDir = join(root, 'examples', 'demo');
  const script = (rel: string) => fileURLToPath(new URL(rel + ext, import.meta.url));
  const scripts = { monolith: script('./monolith'), orders: script('./orders-service'), gateway: script('../../cli/main') };
  const ports = {
    gateway: portFromEnv('CAUSEWAY_PORT', 8080),
    admin: portFromEnv('CAUSEWAY_ADMIN_PORT', 9901),
    monolith: portFromEnv('MONOLITH_PORT', 3001),
    orders: portFromEnv('ORDERS_PORT', 3002),
  };

  // Fail early and clearly when a port is taken (a previous demo still running, say).
  const wanted = [
    { who: 'gateway', env: 'CAUSEWAY_PORT', host: '0.0.0.0', port: ports.gateway },
    { who: 'gateway admin', env: 'CAUSEWAY_ADMIN_PORT', host: '127.0.0.1', port: ports.admin },
    { who: 'monolith', env: 'MONOLITH_PORT', host: '127.0.0.1', port: ports.monolith },
    { who: 'orders-service', env: 'ORDERS_PORT', host: '127.0.0.1', port: ports.orders },
  ];
  const seen = new Map<number, string>();
  for (const { who, env, port } of wanted) {
    const other = seen.get(port);
    if (other) {
      complain(`${who} and ${other} are both set to port ${port}; give ${env} another value.`);
      process.exit(1);
    }
    seen.set(port, who);
  }
  for (const { who, env, host, port } of wanted) {
    if (!(await portIsFree(host, port))) {
      complain(`port ${port} (${who}) is already in use. Stop what uses it, or pick another: ${env}=${port + 10} npm start`);
      process.exit(1);
    }
  }

  for (const [what, file] of Object.entries(scripts)) {
    if (!existsSync(file)) {
      complain(`cannot find the ${what} program at ${relative(process.cwd(), file) || file}.`);
      complain(fromSource ? 'Is the checkout complete?' : 'Build first: npm run build (npm install does it too).');
      process.exit(1);
    }
  }

  // From source, children load the .ts files through the same tsx this process runs under.
  const node = fromSource ? ['--import', import.meta.resolve('tsx')] : [];
  const env = {
    ...process.env,
    CAUSEWAY_PORT: String(ports.gateway),
    CAUSEWAY_ADMIN_PORT: String(ports.admin),
    MONOLITH_PORT: String(ports.monolith),
    ORDERS_PORT: String(ports.orders),
  };
  const specs: ChildSpec[] = [
    {
      name: 'monolith',
      command: process.execPath,
      args: [...node, scripts.monolith, '--port', String(ports.monolith), '--host', '127.0.0.1'],
      env,
      cwd: root,
      ports: [{ host: '127.0.0.1', port: ports.monolith }],
      readyTimeoutMs: 20_000,
      stopTimeoutMs: 5_000,
    },
    {
      name: 'orders-service',
      command: process.execPath,
      args: [...node, scripts.orders, '--port', String(ports.orders), '--host', '127.0.0.1'],
      env,
      cwd: root,
      ports: [{ host: '127.0.0.1', port: ports.orders }],
      readyTimeoutMs: 20_000,
      stopTimeoutMs: 5_000,
    },
    {
      name: 'gateway',
      command: process.execPath,
      args: [...node, scripts.gateway, 'gateway', '-c', configDir],
      env,
      cwd: root,
      ports: [
        { host: '0.0.0.0', port: ports.gateway },
        { host: '127.0.0.1', port: ports.admin },
      ],
      readyTimeoutMs: 30_000,
      // The demo config gives in-flight requests 5s to drain (gateway.yaml, drainTimeout).
      stopTimeoutMs: 8_000,
    },
  ];

  const supervisor = new Supervisor({
    onLine: (name, stream, line) => {
      const text = `${prefix(name)} ${formatLogLine(line).replace(/\n/g, `\n${prefix(name)} `)}`;
      if (stream === 'stderr') console.error(text);
      else console.log(text);
    },
    onNote: (message) => complain(message),
  });

  // Never leave children behind, even if this process dies of a bug.
  process.on('exit', () => supervisor.killAll());

  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    await supervisor.stop();
    say(code === 0 ? 'everything stopped. Bye.' : 'stopped the others.');
    process.exit(code);
  };

  // Under `npm start` one Ctrl-C arrives twice: from the terminal and forwarded by npm. So a
  // repeat within a second is the same keypress; a later one means "force it".
  let lastSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const previous = lastSignalAt;
    lastSignalAt = Date.now();
    if (shuttingDown) {
      if (previous !== 0 && lastSignalAt - previous < 1000) return;
      complain(`${signal} again: killing everything now.`);
      supervisor.killAll();
      process.exit(1);
    }
    say(`${signal}: stopping ${[...specs].reverse().map((s) => s.name).join(', ')}${signal === 'SIGINT' ? ' (Ctrl-C again to force)' : ''}…`);
    void shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal); // terminal closed: the children are in their own process groups

  void supervisor.failure.then((failure) => {
    if (shuttingDown) return;
    reportFailure(failure);
    say('stopping the others…');
    void shutdown(1);
  });

  say(`starting the monolith, the orders service and the gateway (${fromSource ? 'from source, via tsx' : 'compiled, from dist/'})…`);
  try {
    await supervisor.start(specs);
  } catch {
    return; // a failure or a signal; the handlers above finish the job
  }
  if (!shuttingDown) console.log(banner(ports, relative(process.cwd(), configDir) || '.'));
}

await main();
