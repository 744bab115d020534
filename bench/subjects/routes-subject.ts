/**
 * The tunkeeper side of dump-routes-65k / program-routes-65k, run as its own process inside the
 * benchmark's namespace (pinned like ip, a fresh V8 per sample):
 *
 *   routes-subject.js dump TABLE COUNT
 *   routes-subject.js program TABLE COUNT DEV PROTOCOL
 *
 * Opens an Rtnl, prints "ready", then for every "go" line on stdin runs the operation once and
 * prints {"ms", "count"} (dump: routes decoded) or {"ms", "failed"} (program: requests that did
 * not succeed); any other line ends it. Timed: dump — rtnl.routes() from the request to the
 * decoded RouteMessage objects; program — building the 65,280 addRoute requests from the prefix
 * strings and rtnl.batch() until every one is acknowledged (the bench empties the table first).
 */
import { createInterface } from 'node:readline';
import { AF_INET } from '../../netlink/constants/rtnetlink.js';
import { addRoute, Rtnl } from '../../netlink/index.js';
import { routePrefixes } from '../routes-workload.js';

function fail(msg: string): never {
  process.stderr.write(`routes-subject: ${msg}\n`);
  process.exit(1);
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

async function dump(rtnl: Rtnl, table: number): Promise<object> {
  const t0 = nowMs();
  const routes = await rtnl.routes({ table, family: AF_INET });
  const ms = nowMs() - t0;
  return { ms, count: routes.length };
}

async function program(rtnl: Rtnl, table: number, prefixes: readonly string[], ifindex: number, protocol: number): Promise<object> {
  const t0 = nowMs();
  const requests = prefixes.map((dst) => addRoute({ dst, table, protocol, ifindex }));
  const results = await rtnl.batch(requests);
  const ms = nowMs() - t0;
  let failed = 0;
  let firstError = '';
  for (const r of results) {
    if (r.ok) continue;
    if (failed++ === 0) firstError = r.error.message;
  }
  if (failed > 0) process.stderr.write(`routes-subject: ${failed} route adds failed, first: ${firstError}\n`);
  return { ms, failed };
}

async function main(): Promise<void> {
  const [op, tableArg, countArg, dev, protocolArg] = process.argv.slice(2);
  const table = Number(tableArg);
  const count = Number(countArg);
  if ((op !== 'dump' && op !== 'program') || !(table > 0) || !(count > 0) || (op === 'program' && (!dev || !(Number(protocolArg) > 0)))) {
    fail('usage: routes-subject.js dump TABLE COUNT | program TABLE COUNT DEV PROTOCOL');
  }
  const rtnl = await Rtnl.open();
  const prefixes = routePrefixes().slice(0, count);
  let ifindex = 0;
  if (op === 'program') {
    const link = await rtnl.link({ ifname: dev! });
    if (link === undefined) fail(`no link ${dev}`);
    ifindex = link.ifindex;
  }
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'go') break;
    const result = op === 'dump' ? await dump(rtnl, table) : await program(rtnl, table, prefixes, ifindex, Number(protocolArg));
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  rtnl.close();
  process.exit(0);
}

main().catch((e: unknown) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
