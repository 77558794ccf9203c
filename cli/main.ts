#!/usr/bin/env node
// The causeway command: parses flags and starts a role. Nothing else lives here.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { resolveWorkers } from '../config/compile.ts';
import { runGateway } from './gateway.ts';
import { runRoutes, runValidate } from './inspect.ts';

function parseWorkers(value: string): number {
  if (value === 'auto') return resolveWorkers('auto');
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('expected a whole number from 1 to 256, or "auto"');
  return n;
}

const program = new Command();
program
  .name('causeway')
  .description('Edge API gateway and service mesh for moving a monolith to services one route at a time.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program
  .command('gateway')
  .description('Run the edge gateway.')
  .requiredOption('-c, --config <path>', 'config file or directory of files')
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
  .option('--no-watch', 'do not reload when the config files change (SIGHUP and POST /reload still do)')
  .option('--workers <n>', 'worker processes sharing the listeners: a number or "auto" (one per core); overrides gateway.workers', parseWorkers)
  .action(async (opts: { config: string; logLevel: string; watch: boolean; workers?: number }) => {
    process.exitCode = await runGateway({ ...opts, workers: opts.workers ?? null });
  });

program
  .command('validate')
  .description('Check a config file or directory; exit 1 with every error, 0 with a summary.')
  .argument('<path>', 'config file or directory of files')
  .option('--json', 'print the result as JSON')
  .action(async (path: string, opts: { json?: boolean }) => {
    process.exitCode = await runValidate(path, opts);
  });

program
  .command('routes')
  .description('Print the route table in match order.')
  .argument('<path>', 'config file or directory of files')
  .option('--json', 'print the table as JSON')
  .action(async (path: string, opts: { json?: boolean }) => {
    process.exitCode = await runRoutes(path, opts);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander already printed the message (or the help/version text).
    process.exitCode = err.exitCode;
  } else {
    console.error(`causeway: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
