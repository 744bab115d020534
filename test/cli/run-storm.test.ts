/**
 * `tunkeeper run` under an event storm: a Monitor receive buffer far too small for thousands of
 * route changes made with `ip -batch` overflows (ENOBUFS). The agent must count that as
 * resync-needed, relist, and converge: the owned route and MTU changed in the middle of the storm
 * come back, and the foreign routes the storm leaves are untouched. Then the declaration file is
 * edited while the agent runs (the kernel follows), removed (the device goes), and SIGTERM stops
 * the agent with exit code 0.
 */
import { expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess, eventually } from '../helpers/cli.js';
import { httpGet } from '../helpers/http.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';

interface IpLink {
  ifname: string;
  mtu: number;
}
interface IpRoute {
  dst: string;
  metric?: number;
}

const IFNAME = 'tk-storm0';
const FOREIGN_DEV = 'fx0';
/** Foreign routes the storm adds: 198.19.(i >> 8).(i & 255) (host routes) via fx0 (boot protocol). */
const STORM_ROUTES = 3_000;

function declaration(mtu: number, routes: string[]): string {
  return [
    'apiVersion: tunkeeper.io/v1alpha1',
    'kind: TunDevice',
    'metadata:',
    '  name: tk-storm',
    'spec:',
    `  ifname: ${IFNAME}`,
    '  mode: tun',
    `  mtu: ${mtu}`,
    '  addresses: [192.0.2.1/24]',
    '  routes:',
    ...routes.map((to) => `    - to: ${to}`),
    '',
  ].join('\n');
}

const OWNED_ROUTES = ['203.0.113.0/25', '203.0.113.128/25', '198.51.100.0/26'];

function metricsUrl(p: CliProcess): string | undefined {
  for (const line of p.lines()) {
    try {
      const url = (JSON.parse(line) as { url?: unknown }).url;
      if (typeof url === 'string') return url;
    } catch {
      // not a log line
    }
  }
  return undefined;
}

function counter(metrics: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics);
  return m ? Number(m[1]) : 0;
}

const link = async (ns: Netns, name: string): Promise<IpLink | undefined> =>
  (await ns.ipJson<IpLink[]>('link', 'show')).find((l) => l.ifname === name);
const ownedRoutes = async (ns: Netns): Promise<string[]> =>
  (await ns.ipJson<IpRoute[]>('route', 'show', 'proto', '116')).map((r) => r.dst).sort();
const foreignRoutes = async (ns: Netns): Promise<string[]> =>
  (await ns.ipJson<IpRoute[]>('route', 'show', 'dev', FOREIGN_DEV, 'proto', 'boot')).map((r) => `${r.dst} metric ${r.metric ?? 0}`).sort();

/** A host route: `ip -j` prints its dst without /32. */
const stormPrefix = (i: number) => `198.19.${i >> 8}.${i & 255}`;

/**
 * Adds every storm route (with the round as metric, so each round adds new routes), deletes the
 * odd ones, and in the middle deletes an owned route and changes the owned MTU: thousands of
 * notifications in a burst.
 */
function stormBatch(round: number): string {
  const lines: string[] = [];
  for (let i = 0; i < STORM_ROUTES; i++) lines.push(`route add ${stormPrefix(i)} dev ${FOREIGN_DEV} proto boot metric ${round}`);
  lines.push(`route del ${OWNED_ROUTES[0]} dev ${IFNAME} proto 116`, `link set ${IFNAME} mtu 1300`);
  for (let i = 1; i < STORM_ROUTES; i += 2) lines.push(`route del ${stormPrefix(i)} dev ${FOREIGN_DEV} metric ${round}`);
  return lines.join('\n') + '\n';
}

describeKernel('tunkeeper run under an event storm', () => {
  it('overflows a tiny monitor buffer, relists, converges, leaves foreign routes alone, follows file edits and stops on SIGTERM', async () => {
    await withNetns(async (ns) => {
      const dir = await mkdtemp(join(tmpdir(), 'tk-storm-'));
      // The agent watches the directory, so removing the file later is a complete, empty declaration.
      const file = join(dir, 'storm.yaml');
      await writeFile(file, declaration(1400, OWNED_ROUTES));
      // A veth end (carrier on once both are up) of its own carries the foreign routes.
      await ns.ip('link', 'add', FOREIGN_DEV, 'type', 'veth', 'peer', 'name', 'fx1');
      await ns.ip('address', 'add', '198.18.0.1/24', 'dev', FOREIGN_DEV);
      await ns.ip('link', 'set', FOREIGN_DEV, 'up');
      await ns.ip('link', 'set', 'fx1', 'up');
      const p = new CliProcess(['run', '-f', dir, '--netns', ns.name, '--monitor-rcvbuf', '4096', '--metrics-address', '127.0.0.1:0']);
      try {
        const converged = async (): Promise<true | undefined> => {
          const l = await link(ns, IFNAME);
          const owned = await ownedRoutes(ns);
          return l?.mtu === 1400 && JSON.stringify(owned) === JSON.stringify([...OWNED_ROUTES].sort()) ? true : undefined;
        };
        await eventually(p, 'the declared device and routes', converged);
        const url = await eventually(p, 'the metrics URL', async () => metricsUrl(p));

        // A storm overflows the buffer unless the agent happens to keep up; a few rounds make it certain.
        let resyncs = 0;
        const expectedForeign: string[] = [];
        for (let round = 1; round <= 5 && resyncs === 0; round++) {
          await ns.exec('ip', ['-batch', '-'], { input: stormBatch(round) });
          await eventually(p, `convergence after storm ${round}`, converged);
          for (let i = 0; i < STORM_ROUTES; i += 2) expectedForeign.push(`${stormPrefix(i)} metric ${round}`);
          resyncs = counter(await httpGet(`${url}/metrics`), 'tunkeeper_resync_needed_total');
        }
        expect(resyncs).toBeGreaterThan(0);
        expectedForeign.sort();
        expect(await foreignRoutes(ns)).toEqual(expectedForeign);
        expect(await link(ns, FOREIGN_DEV)).toBeDefined();

        // The file changes while the agent runs: the kernel follows.
        await writeFile(file, declaration(1280, [...OWNED_ROUTES, '198.51.100.64/26']));
        await eventually(p, 'the edited MTU and the added route', async () =>
          (await link(ns, IFNAME))?.mtu === 1280 && (await ownedRoutes(ns)).includes('198.51.100.64/26') ? true : undefined,
        );
        // The declaration gone: the owned device goes (and its routes with it).
        await rm(file);
        await eventually(p, 'the device removed', async () => ((await link(ns, IFNAME)) === undefined ? true : undefined));
        expect(await ownedRoutes(ns)).toEqual([]);
        expect(await foreignRoutes(ns)).toEqual(expectedForeign);

        p.kill('SIGTERM');
        const r = await p.exited;
        expect(r.signal).toBeNull();
        expect(r.code).toBe(0);
      } finally {
        if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL');
        await p.exited.catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      }
    }, 'storm');
  });
});
