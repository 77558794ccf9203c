// Start a real gateway in the test process from a config object, closed in t.teardown.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Gateway } from '../../gateway/server.ts';

export interface TestGateway {
  gw: Gateway;
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  dir: string;
  file: string;
  /** Replace the config file's content (JSON) and wait for the reload it triggers. */
  rewrite(config: Record<string, any>): Promise<void>;
}

/** Fill in loopback listeners on free ports unless the test set them. */
export function withTestListeners(config: Record<string, any>): Record<string, any> {
  return {
    ...config,
    gateway: config.gateway?.listeners ? config.gateway : { listen: { host: '127.0.0.1', port: 0 }, ...(config.gateway ?? {}) },
    admin: { listen: { host: '127.0.0.1', port: 0 }, ...(config.admin ?? {}) },
  };
}

export async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'causeway-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function startGateway(
  t: ExecutionContext,
  config: Record<string, any>,
  opts: { watch?: boolean } = {},
): Promise<TestGateway> {
  const dir = await tempDir(t);
  const file = join(dir, 'causeway.json');
  await writeFile(file, JSON.stringify(withTestListeners(config), null, 2));
  const gw = await Gateway.start({ config: file, logger: 'silent', watch: opts.watch ?? false });
  t.teardown(() => gw.close());
  const port = gw.address().port;
  const adminPort = gw.adminAddress().port;
  return {
    gw,
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    dir,
    file,
    async rewrite(next) {
      const full = withTestListeners(next);
      // keep the ports the gateway already listens on
      if (!full.gateway.listeners) full.gateway.listen = { host: '127.0.0.1', port: 0 };
      await writeFile(file, JSON.stringify(full, null, 2));
    },
  };
}
