// A gateway as a child process (the real CLI) for hardening tests. At teardown it asserts that
// the process counted no unhandled rejection and no uncaught exception (GET /config →
// processErrors), so a test that provokes one in the gateway fails even if its own assertions pass.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { tempDir, withTestListeners } from '../../helpers/gateway.ts';
import { startCli, type RunningCli } from '../../helpers/process.ts';

export interface GatewayProcess {
  cli: RunningCli;
  port: number;
  adminUrl: string;
  processErrors(): Promise<{ unhandledRejections: number; uncaughtExceptions: number }>;
}

export async function startGatewayProcess(
  t: ExecutionContext,
  config: Record<string, any>,
  opts: { env?: Record<string, string>; expectProcessErrors?: boolean } = {},
): Promise<GatewayProcess> {
  const dir = await tempDir(t);
  const file = join(dir, 'causeway.json');
  await writeFile(file, JSON.stringify(withTestListeners(config), null, 2));
  const cli = startCli(t, ['gateway', '-c', file, '--no-watch', '--log-level', 'info'], opts.env ?? {});
  const ready = await cli.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  const adminUrl = `http://127.0.0.1:${ready.admin.port}`;
  const gp: GatewayProcess = {
    cli,
    port: ready.address.port,
    adminUrl,
    async processErrors() {
      const res = await fetch(`${adminUrl}/config`);
      return ((await res.json()) as { processErrors: { unhandledRejections: number; uncaughtExceptions: number } }).processErrors;
    },
  };
  if (opts.expectProcessErrors !== true) {
    // registered after startCli's own teardown, so it runs first (ava runs teardowns last-in first-out)
    t.teardown(async () => {
      if (cli.child.exitCode !== null || cli.child.signalCode !== null) {
        throw new Error(`the gateway process exited during the test (${cli.child.exitCode ?? cli.child.signalCode}); stderr: ${cli.stderr()}`);
      }
      const counts = await gp.processErrors();
      if (counts.unhandledRejections !== 0 || counts.uncaughtExceptions !== 0) {
        throw new Error(`the gateway process counted process errors: ${JSON.stringify(counts)}; logs: ${JSON.stringify(cli.logs.filter((l) => l.level >= 50))}`);
      }
    });
  }
  return gp;
}
