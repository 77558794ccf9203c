// `causeway gateway`: run the edge gateway until SIGTERM/SIGINT, reload on SIGHUP.
import { ConfigError } from '../config/issues.ts';
import { Gateway } from '../gateway/server.ts';

export async function runGateway(opts: { config: string; logLevel: string; watch: boolean }): Promise<number> {
  let gw: Gateway;
  try {
    gw = await Gateway.start({ config: opts.config, logger: opts.logLevel, watch: opts.watch });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`causeway: the config is invalid (${err.issues.length} error${err.issues.length === 1 ? '' : 's'}):\n${err.message}`);
    } else {
      console.error(`causeway: ${(err as Error).message}`);
    }
    return 1;
  }
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        gw.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      gw.log.info({ signal }, 'shutting down');
      gw.shutdown().then(
        () => resolveExit(0),
        (err: unknown) => {
          gw.log.error({ err }, 'shutdown failed');
          resolveExit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void gw.reload('SIGHUP'));
  });
}
