/**
 * `tunkeeper monitor [--netns NAME] [--json] [--rcvbuf BYTES]`: decoded rtnetlink events, one
 * line (or one JSON object) each, until SIGINT or SIGTERM (exit 0). An overflow of the receive
 * buffer (ENOBUFS) prints `resync-needed` ({"type":"resync-needed"}); reading goes on.
 * For people and scripts watching: tunkeeper itself treats events as wake-ups only.
 */
import type { Command } from 'commander';
import { Subscription } from 'rxjs';
import type { CommandContext } from '../context.js';
import { integerOption } from '../options.js';
import { DEFAULT_MONITOR_RCVBUF, Monitor, eventJson, formatEvent } from '../../../netlink/index.js';

interface MonitorOptions {
  netns?: string;
  json?: boolean;
  rcvbuf: number;
}

export function registerMonitor(program: Command, ctx: CommandContext): void {
  program
    .command('monitor')
    .description('print decoded rtnetlink events (links, addresses, routes, neighbours, rules) until SIGINT/SIGTERM')
    .option('--netns <name>', 'network namespace: NAME (/run/netns/NAME) or a path')
    .option('--json', 'one JSON object per line')
    .option('--rcvbuf <bytes>', 'socket receive buffer to ask for', integerOption('--rcvbuf', 1, 0x7fffffff, 'a number of bytes'), DEFAULT_MONITOR_RCVBUF)
    .action(async (opts: MonitorOptions) => {
      const monitor = await Monitor.open({ rcvbuf: opts.rcvbuf, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
      const format = opts.json === true ? eventJson : formatEvent;
      await new Promise<void>((resolve) => {
        const subscription = new Subscription();
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          subscription.unsubscribe();
          monitor.close();
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        subscription.add(
          monitor.subscribe({
            next: (e) => ctx.stdout.write(`${format(e)}\n`),
            error: (err: unknown) => {
              ctx.stderr.write(`tunkeeper monitor: ${err instanceof Error ? err.message : String(err)}\n`);
              ctx.exitCode = 1;
              stop();
            },
          }),
        );
        // On stderr, so that stdout stays pure events: tells a watcher (or a test) we are listening.
        ctx.stderr.write(`tunkeeper monitor: listening${opts.netns !== undefined ? ` in ${opts.netns}` : ''} (rcvbuf ${monitor.rcvbuf} bytes); SIGINT or SIGTERM stops\n`);
      });
    });
}
