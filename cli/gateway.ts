// `causeway gateway`: run the edge gateway until SIGTERM/SIGINT, reload on SIGHUP.
import { ConfigError } from '../config/issues.ts';
import { clusterPlan, joinCluster, releaseChannel, runPrimary, workerNumber } from '../gateway/cluster.ts';
import { Gateway } from '../gateway/server.ts';

/** Exit code after an uncaught exception (EX_SOFTWARE): the process state is unknown. */
export const UNCAUGHT_EXIT_CODE = 70;

/**
 * Unhandled rejections and uncaught exceptions are logged (JSON, with a stable code) and counted
 * (GET /config on the admin port shows `processErrors`). A rejection nobody handled is a bug but
 * leaves the process consistent, so the gateway keeps serving; after an uncaught exception it
 * exits with UNCAUGHT_EXIT_CODE once the line is written, and the supervisor restarts it.
 */
function watchProcessErrors(getGateway: () => Gateway | null): { unhandledRejections: number; uncaughtExceptions: number } {
  const counts = { unhandledRejections: 0, uncaughtExceptions: 0 };
  process.on('unhandledRejection', (reason) => {
    counts.unhandledRejections++;
    const entry = { err: reason, code: 'CW_UNHANDLED_REJECTION', unhandledRejections: counts.unhandledRejections };
    const gw = getGateway();
    if (gw) gw.log.error(entry, 'unhandled promise rejection; still serving');
    else console.error(`causeway: unhandled promise rejection: ${(reason as Error)?.stack ?? String(reason)}`);
  });
  process.on('uncaughtException', (err, origin) => {
    counts.uncaughtExceptions++;
    const gw = getGateway();
    if (gw) gw.log.fatal({ err, origin, code: 'CW_UNCAUGHT_EXCEPTION' }, 'uncaught exception; exiting');
    else console.error(`causeway: uncaught exception: ${err?.stack ?? String(err)}`);
    process.exit(UNCAUGHT_EXIT_CODE);
  });
  return counts;
}

export async function runGateway(opts: { config: string; logLevel: string; watch: boolean; workers?: number | null }): Promise<number> {
  const worker = workerNumber();
  if (worker === undefined) {
    const plan = await clusterPlan({ config: opts.config, workers: opts.workers ?? null });
    if (plan !== null) return runPrimary(opts.logLevel, plan);
  }
  let gw: Gateway | null = null;
  const counts = watchProcessErrors(() => gw);
  try {
    gw = await Gateway.start({ config: opts.config, logger: opts.logLevel, watch: opts.watch, ...(worker !== undefined ? { worker } : {}) });
  } catch (err) {
    if (worker !== undefined) releaseChannel();
    if (err instanceof ConfigError) {
      console.error(`causeway: the config is invalid (${err.issues.length} error${err.issues.length === 1 ? '' : 's'}):\n${err.message}`);
    } else {
      console.error(`causeway: ${(err as Error).message}`);
    }
    return 1;
  }
  const running: Gateway = gw;
  running.processErrors = counts;
  if (worker !== undefined) joinCluster(running);
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      // A worker gets Ctrl-C from the terminal and SIGTERM from the primary: one drain. The
      // primary kills it if the drain takes too long.
      if (stopping && worker !== undefined) return;
      if (stopping) {
        running.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      running.log.info({ signal }, 'shutting down');
      running.shutdown().then(
        () => resolveExit(0),
        (err: unknown) => {
          running.log.error({ err }, 'shutdown failed');
          resolveExit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // In a cluster the primary passes SIGHUP on (a terminal's SIGHUP reaches the whole group).
    process.on('SIGHUP', () => {
      if (worker === undefined) void running.reload('SIGHUP');
    });
  });
}
