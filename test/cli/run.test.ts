/**
 * `tunkeeper run` through bin/tunkeeper in a namespace of its own: the agent creates the declared
 * device, repairs drift made with `ip`, serves its probes and metrics, and stops cleanly on
 * SIGTERM leaving the device in place.
 */
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliProcess, eventually, runCli } from '../helpers/cli.js';
import { httpRequest as get } from '../helpers/http.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';

const P2P = fileURLToPath(new URL('../../../examples/point-to-point.yaml', import.meta.url));

interface IpLink {
  ifname: string;
  mtu: number;
  flags: string[];
  ifalias?: string;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  protocol?: string | number;
}

const link = async (ns: Netns, name: string): Promise<IpLink | undefined> => (await ns.ipJson<IpLink[]>('link', 'show', 'dev', name))[0];
const routes = (ns: Netns): Promise<IpRoute[]> => ns.ipJson<IpRoute[]>('route', 'show', 'proto', '116');

function logs(p: CliProcess): Array<Record<string, unknown>> {
  return p.lines().flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

async function withAgent(args: string[], fn: (p: CliProcess) => Promise<void>): Promise<void> {
  const p = new CliProcess(['run', ...args]);
  try {
    await fn(p);
  } finally {
    if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL');
    await p.exited.catch(() => undefined);
  }
}

describeKernel('tunkeeper run', () => {
  it('creates the declared device, repairs drift made with ip, and leaves the device on SIGTERM', async () => {
    await withNetns(async (ns) => {
      await withAgent(['-f', P2P, '--netns', ns.name, '--metrics-address', '127.0.0.1:0'], async (p) => {
        const created = await eventually(p, 'tk-p2p0', async () => {
          const l = await link(ns, 'tk-p2p0');
          return l && l.mtu === 1420 && l.flags.includes('UP') ? l : undefined;
        });
        expect(created.ifalias).toBe('tunkeeper:tk-p2p');
        await eventually(p, 'the routes', async () => ((await routes(ns)).some((r) => r.dst === '198.51.100.0/24') ? true : undefined));

        const url = await eventually(p, 'the metrics URL', async () => logs(p).find((l) => typeof l.url === 'string')?.url as string | undefined);
        expect((await eventually(p, 'readiness', async () => { const r = await get(`${url}/readyz`); return r.status === 200 ? r : undefined; })).body).toMatch(/^ok/);
        expect((await get(`${url}/healthz`)).status).toBe(200);

        // Drift, made behind tunkeeper's back: each is put back.
        await ns.ip('route', 'del', '198.51.100.0/24', 'via', '192.0.2.2');
        await eventually(p, 'the route back', async () => ((await routes(ns)).some((r) => r.dst === '198.51.100.0/24' && r.gateway === '192.0.2.2') ? true : undefined));
        await ns.ip('link', 'set', 'tk-p2p0', 'mtu', '1300');
        await eventually(p, 'the MTU back', async () => ((await link(ns, 'tk-p2p0'))?.mtu === 1420 ? true : undefined));
        await ns.ip('link', 'set', 'tk-p2p0', 'down');
        await eventually(p, 'the link up again', async () => ((await link(ns, 'tk-p2p0'))?.flags.includes('UP') ? true : undefined));

        // Three repairs in quick succession are a fight: passes during the hold that follows
        // report the device 'held' until the hold ends and a pass finds it in order. Read the
        // metrics once a pass has reported it ready again (the event this check is about).
        const metrics = await eventually(p, 'a pass reporting the device ready', async () => {
          const body = (await get(`${url}/metrics`)).body;
          return body.includes('tunkeeper_managed_devices{status="ready"} 1') ? body : undefined;
        });
        expect(metrics).toMatch(/tunkeeper_reconciles_total\{result="converged"\} [1-9]/);
        expect(metrics).toMatch(/tunkeeper_wakeups_total\{reason="netlink-event"\} [1-9]/);
        expect(metrics).toMatch(/tunkeeper_drift_repairs_total\{kind="route"\} [1-9]/);
        expect(metrics).toMatch(/tunkeeper_drift_repairs_total\{kind="mtu"\} [1-9]/);
        expect(metrics).toContain('tunkeeper_managed_devices{status="ready"} 1');

        p.kill('SIGTERM');
        const r = await p.exited;
        expect(r.signal).toBeNull();
        expect(r.code).toBe(0);
        expect(logs(p).some((l) => l.msg === 'tunkeeper agent stopped; devices left in place')).toBe(true);
        // Persistent: the device and its configuration outlive the agent.
        expect(await link(ns, 'tk-p2p0')).toMatchObject({ mtu: 1420, ifalias: 'tunkeeper:tk-p2p' });
        expect((await routes(ns)).map((x) => x.dst)).toEqual(expect.arrayContaining(['198.51.100.0/24', '203.0.113.0/24']));
      });
    });
  });

  it('does not delete an owned device while a declaration file is broken (fail static), then prunes once it is fixed', async () => {
    await withNetns(async (ns) => {
      const dir = await mkdtemp(join(tmpdir(), 'tk-run-'));
      try {
        const file = join(dir, 'devices.yaml');
        const doc = (name: string) => `apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata:\n  name: ${name}\nspec:\n  mode: tun\n`;
        // A second file that never was valid keeps the snapshot incomplete: nothing may be deleted.
        await writeFile(file, `${doc('tk-keep')}---\n${doc('tk-gone')}`);
        await writeFile(join(dir, 'broken.yaml'), 'apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata: {name: tk-bad}\nspec: {mtu: nope}\n');
        await withAgent(['-f', dir, '--netns', ns.name, '--metrics-address', 'off'], async (p) => {
          await eventually(p, 'both devices', async () => ((await link(ns, 'tk-keep')) && (await link(ns, 'tk-gone')) ? true : undefined));
          await writeFile(file, doc('tk-keep'));
          await eventually(p, 'the new declarations read', async () =>
            logs(p).some((l) => l.msg === 'desired state read' && l.devices === 1) ? true : undefined,
          );
          // Wake the loop a few times: still nothing may be pruned.
          await ns.ip('link', 'set', 'tk-keep', 'mtu', '1300');
          await eventually(p, 'the MTU repaired', async () => ((await link(ns, 'tk-keep'))?.mtu === 1500 ? true : undefined));
          expect(await link(ns, 'tk-gone')).toBeDefined();
          await rm(join(dir, 'broken.yaml'));
          await eventually(p, 'tk-gone pruned', async () => ((await ns.ipJson<IpLink[]>('link', 'show')).some((l) => l.ifname === 'tk-gone') ? undefined : true));
          expect(await link(ns, 'tk-keep')).toBeDefined();
          p.kill('SIGINT');
          expect((await p.exited).code).toBe(0);
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('tunkeeper run arguments', () => {
  it('--kube without a node name says where the name comes from', async () => {
    const env = { ...process.env };
    delete env.NODE_NAME;
    const r = await runCli(['run', '--kube'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--kube needs the node name: set NODE_NAME');
  });

  it('needs something to watch', async () => {
    const r = await runCli(['run']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nothing to watch: give -f PATH');
    expect(r.stderr).toContain('--kube');
  });

  it('stops on an unknown setting, naming file and line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-run-'));
    try {
      const config = join(dir, 'agent.yaml');
      await writeFile(config, 'logLevel: info\nresync: 5m\n');
      const r = await runCli(['run', '-f', P2P, '--config', config]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${config}:2:1: unknown setting "resync"`);
      const bad = await runCli(['run', '-f', P2P, '--route-protocol', '2']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('--route-protocol must be 5..255');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
