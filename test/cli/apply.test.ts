/**
 * `tunkeeper apply` through bin/tunkeeper, in fresh namespaces, checked with `ip -j -d`: every
 * example converges, a second apply finds nothing to do, changes converge (recreating for a field
 * fixed at creation), removed declarations remove their device, invalid files change nothing, and
 * foreign links, addresses and routes are byte-identical before and after.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { createNetns, withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

interface IpLink {
  ifname: string;
  mtu: number;
  flags: string[];
  txqlen?: number;
  address?: string;
  ifalias?: string;
  linkinfo?: { info_kind: string; info_data?: { type: string; pi: boolean; vnet_hdr: boolean; multi_queue: boolean; persist: boolean; user?: string; group?: string } };
}
interface IpAddr {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string }>;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  table?: string;
  metric?: number;
  prefsrc?: string;
  flags?: string[];
}

/** How `ip` shows a uid/gid: the name when the host knows one. */
function idName(id: number): string {
  try {
    return execFileSync('getent', ['passwd', String(id)], { encoding: 'utf8' }).split(':')[0] || String(id);
  } catch {
    return String(id);
  }
}
function groupName(id: number): string {
  try {
    return execFileSync('getent', ['group', String(id)], { encoding: 'utf8' }).split(':')[0] || String(id);
  } catch {
    return String(id);
  }
}

async function link(ns: Netns, ifname: string): Promise<IpLink | undefined> {
  const links = await ns.ipJson<IpLink[]>('-d', 'link', 'show');
  return links.find((l) => l.ifname === ifname);
}

async function globalAddresses(ns: Netns, ifname: string): Promise<string[]> {
  const [a] = await ns.ipJson<IpAddr[]>('addr', 'show', 'dev', ifname);
  return (a?.addr_info ?? []).filter((i) => i.scope === 'global').map((i) => `${i.local}/${i.prefixlen}`).sort();
}

async function ownedRoutes(ns: Netns): Promise<IpRoute[]> {
  const v4 = await ns.ipJson<IpRoute[]>('-4', 'route', 'show', 'table', 'all', 'proto', '116');
  const v6 = await ns.ipJson<IpRoute[]>('-6', 'route', 'show', 'table', 'all', 'proto', '116');
  return [...v4, ...v6];
}

/** Everything tunkeeper must not touch, as `ip -j -d` prints it. */
async function foreignSnapshot(ns: Netns): Promise<string> {
  const parts = await Promise.all([
    ns.ip('-j', '-d', 'link', 'show', 'dev', 'v0'),
    ns.ip('-j', '-d', 'link', 'show', 'dev', 'v1'),
    ns.ip('-j', '-d', 'addr', 'show', 'dev', 'v0'),
    ns.ip('-j', '-d', 'addr', 'show', 'dev', 'v1'),
    ns.ip('-j', '-d', 'route', 'show', 'table', 'all', 'dev', 'v0'),
    ns.ip('-j', '-d', '-6', 'route', 'show', 'table', 'all', 'dev', 'v0'),
    ns.ip('-j', '-d', 'route', 'show', 'table', 'all', 'proto', 'static'),
  ]);
  return parts.join('\n');
}

async function apply(ns: Netns, ...paths: string[]) {
  return runCli(['apply', '--netns', ns.name, ...paths.flatMap((p) => ['-f', p])]);
}
async function plan(ns: Netns, ...args: string[]) {
  return runCli(['plan', '--netns', ns.name, ...args]);
}

describeKernel('tunkeeper apply', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-apply-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('each example converges and a second pass finds nothing to do', () => {
    it('multiqueue-owned.yaml: a multi-queue, vnet-hdr TUN device owned by uid/gid 1000', async () => {
      await withNetns(async (ns) => {
        const r = await apply(ns, join(EXAMPLES, 'multiqueue-owned.yaml'));
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('tunkeeper apply: converged');
        const l = (await link(ns, 'tk-mq0'))!;
        expect(l).toMatchObject({ mtu: 9000, ifalias: 'tunkeeper:tk-mq0' });
        expect(l.flags).toContain('UP');
        expect(l.linkinfo).toMatchObject({ info_kind: 'tun', info_data: { type: 'tun', multi_queue: true, vnet_hdr: true, pi: false, persist: true, user: idName(1000), group: groupName(1000) } });
        expect(await globalAddresses(ns, 'tk-mq0')).toEqual(['198.51.100.129/25']);
        expect((await ownedRoutes(ns)).map((x) => [x.dst, x.gateway, x.dev])).toEqual([['198.18.0.0/15', '198.51.100.254', 'tk-mq0']]);
        const again = await plan(ns, '-f', join(EXAMPLES, 'multiqueue-owned.yaml'));
        expect(again.code).toBe(0);
        expect(again.stdout).toContain('in sync, no changes');
      }, 'apply-mq');
    });

    it('point-to-point.yaml: IPv4 and IPv6 addresses, routes via the peer, onLink, a table of its own', async () => {
      await withNetns(async (ns) => {
        const r = await apply(ns, join(EXAMPLES, 'point-to-point.yaml'));
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const l = (await link(ns, 'tk-p2p0'))!;
        expect(l).toMatchObject({ mtu: 1420, ifalias: 'tunkeeper:tk-p2p' });
        expect(l.flags).toContain('UP');
        expect(l.linkinfo?.info_data).toMatchObject({ type: 'tun', multi_queue: false, vnet_hdr: false, pi: false, persist: true });
        expect(await globalAddresses(ns, 'tk-p2p0')).toEqual(['192.0.2.1/30', '2001:db8:100::1/64']);
        const routes = await ownedRoutes(ns);
        const row = (x: IpRoute) => `${x.dst} ${x.gateway ?? '-'} ${x.dev} ${x.table ?? 'main'} ${x.metric ?? 0} ${x.prefsrc ?? '-'} ${(x.flags ?? []).includes('onlink') ? 'onlink' : ''}`.trim();
        expect(routes.map(row).sort()).toEqual(
          [
            '198.51.100.0/24 192.0.2.2 tk-p2p0 main 100 -',
            '203.0.113.0/24 - tk-p2p0 main 0 192.0.2.1',
            '198.18.0.0/15 198.19.255.254 tk-p2p0 100 0 - onlink',
            '2001:db8:200::/48 2001:db8:100::2 tk-p2p0 main 1024 -',
          ].sort(),
        );
        const again = await plan(ns, '-f', join(EXAMPLES, 'point-to-point.yaml'));
        expect(again.code).toBe(0);
      }, 'apply-p2p');
    });

    it('tap-with-mac.yaml: a TAP device with a fixed MAC and txqueuelen', async () => {
      await withNetns(async (ns) => {
        const r = await apply(ns, join(EXAMPLES, 'tap-with-mac.yaml'));
        expect(r.code).toBe(0);
        const l = (await link(ns, 'tk-tap0'))!;
        expect(l).toMatchObject({ mtu: 1500, txqlen: 1000, address: '00:00:5e:00:53:01', ifalias: 'tunkeeper:tk-tap0' });
        expect(l.linkinfo?.info_data).toMatchObject({ type: 'tap', persist: true });
        expect(await globalAddresses(ns, 'tk-tap0')).toEqual(['2001:db8:300::1/64', '203.0.113.129/25']);
        expect((await apply(ns, join(EXAMPLES, 'tap-with-mac.yaml'))).stdout).toContain('converged, 0 of 0 changes applied');
        expect((await plan(ns, '-f', join(EXAMPLES, 'tap-with-mac.yaml'))).code).toBe(0);
      }, 'apply-tap');
    });

    it('edge-probed.yaml: a device whose route probe passes once it is applied', async () => {
      await withNetns(async (ns) => {
        const r = await apply(ns, join(EXAMPLES, 'edge-probed.yaml'));
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
        expect(r.stdout).toContain('tk-edge0: probe route 198.19.0.7 passed: 198.19.0.7 → dev tk-edge0 via its route 198.19.0.0/16');
        expect((await ownedRoutes(ns)).map((x) => [x.dst, x.dev])).toEqual([['198.19.0.0/16', 'tk-edge0']]);
        const again = await plan(ns, '-f', join(EXAMPLES, 'edge-probed.yaml'));
        expect(again.code).toBe(0);
        expect(again.stdout).toContain('tk-edge0: probe route 198.19.0.7 passed');
      }, 'apply-edge');
    });

    it('every file of examples/ is valid on its own', async () => {
      const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith('.yaml'));
      expect(files.sort()).toEqual(['edge-probed.yaml', 'multiqueue-owned.yaml', 'point-to-point.yaml', 'tap-with-mac.yaml']);
    });
  });

  describe('changes, removals and foreign objects', () => {
    let ns: Netns;
    const decl = (over: { mtu?: number; addresses?: string[]; multiQueue?: boolean } = {}) => `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: tk-edge0
spec:
  mode: tun
  mtu: ${over.mtu ?? 1420}
  multiQueue: ${over.multiQueue ?? false}
  addresses:
${(over.addresses ?? ['192.0.2.1/24', '2001:db8:1::1/64']).map((a) => `    - ${a}`).join('\n')}
  routes:
    - to: 198.51.100.0/24
      via: 192.0.2.254
    - to: 203.0.113.0/25
      table: 200
`;
    let file: string;

    beforeAll(async () => {
      ns = await createNetns('apply-chg');
      // Foreign: a veth pair with addresses, a static route in main and one in table 200, and the
      // declared prefix 198.51.100.0/24 with another protocol in another table.
      await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
      await ns.ip('link', 'set', 'v0', 'up');
      await ns.ip('link', 'set', 'v1', 'up');
      await ns.ip('addr', 'add', '198.18.0.1/24', 'dev', 'v0');
      await ns.ip('-6', 'addr', 'add', '2001:db8:9::1/64', 'dev', 'v0', 'nodad');
      await ns.ip('route', 'add', '203.0.113.128/25', 'via', '198.18.0.254', 'proto', 'static');
      await ns.ip('route', 'add', '203.0.113.128/25', 'via', '198.18.0.254', 'table', '200', 'proto', 'static');
      await ns.ip('route', 'add', '198.51.100.0/24', 'via', '198.18.0.254', 'table', '300', 'proto', 'static');
      // Snapshots compare what tunkeeper could change, not the kernel's clock: the veth ends'
      // link-locals must exist and have finished DAD first.
      await ns.settledLinkLocals('v0', 'v1');
      file = join(dir, 'edge.yaml');
      await writeFile(file, decl());
    });
    afterAll(async () => {
      await ns?.delete();
    });

    it('plan says 2 (changes pending) before the first apply, 0 after; foreign objects are untouched', async () => {
      const before = await foreignSnapshot(ns);
      const p = await plan(ns, '-f', file);
      expect(p.code).toBe(2);
      expect(p.stdout).toMatch(/^\+ tk-edge0/m);
      const json = await plan(ns, '-f', file, '--json');
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout)).toMatchObject({ inSync: false, summary: { actionsByType: { 'create-device': 1 } } });
      const r = await apply(ns, file);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(await globalAddresses(ns, 'tk-edge0')).toEqual(['192.0.2.1/24', '2001:db8:1::1/64']);
      expect((await ownedRoutes(ns)).map((x) => `${x.dst} ${x.table ?? 'main'}`).sort()).toEqual(['198.51.100.0/24 main', '203.0.113.0/25 200']);
      expect((await plan(ns, '-f', file)).code).toBe(0);
      expect(JSON.parse((await plan(ns, '-f', file, '--json')).stdout)).toMatchObject({ inSync: true });
      expect(await foreignSnapshot(ns)).toBe(before);
    });

    it('converges an MTU change and a removed address', async () => {
      const before = await foreignSnapshot(ns);
      await writeFile(file, decl({ mtu: 1380, addresses: ['192.0.2.1/24'] }));
      expect((await plan(ns, '-f', file)).code).toBe(2);
      const r = await apply(ns, file);
      expect(r.code).toBe(0);
      expect((await link(ns, 'tk-edge0'))!.mtu).toBe(1380);
      expect(await globalAddresses(ns, 'tk-edge0')).toEqual(['192.0.2.1/24']);
      expect((await plan(ns, '-f', file)).code).toBe(0);
      expect(await foreignSnapshot(ns)).toBe(before);
    });

    it('recreates the device for a field fixed at creation, and plan says so', async () => {
      const before = await foreignSnapshot(ns);
      const oldIndex = (await ns.ipJson<Array<{ ifindex: number }>>('link', 'show', 'dev', 'tk-edge0'))[0]!.ifindex;
      await writeFile(file, decl({ mtu: 1380, addresses: ['192.0.2.1/24'], multiQueue: true }));
      const p = await plan(ns, '-f', file);
      expect(p.code).toBe(2);
      expect(p.stdout).toMatch(/-\/\+.*tk-edge0/);
      expect(p.stdout).toContain('multiQueue');
      const r = await apply(ns, file);
      expect(r.code).toBe(0);
      const l = (await link(ns, 'tk-edge0'))!;
      expect(l.linkinfo?.info_data?.multi_queue).toBe(true);
      expect((await ns.ipJson<Array<{ ifindex: number }>>('link', 'show', 'dev', 'tk-edge0'))[0]!.ifindex).not.toBe(oldIndex);
      expect(l.mtu).toBe(1380);
      expect(await globalAddresses(ns, 'tk-edge0')).toEqual(['192.0.2.1/24']);
      expect((await ownedRoutes(ns)).map((x) => `${x.dst} ${x.dev}`).sort()).toEqual(['198.51.100.0/24 tk-edge0', '203.0.113.0/25 tk-edge0']);
      expect((await plan(ns, '-f', file)).code).toBe(0);
      expect(await foreignSnapshot(ns)).toBe(before);
    });

    it('an invalid file: exit 1 with file:line:col, nothing changed', async () => {
      const before = await ns.ip('-j', '-d', 'link', 'show') + (await ns.ip('-j', 'addr', 'show')) + (await ns.ip('-j', 'route', 'show', 'table', 'all'));
      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, (await readFile(file, 'utf8')).replace('mtu: 1380', 'mtu: 12'));
      for (const cmd of [apply(ns, bad), plan(ns, '-f', bad)]) {
        const r = await cmd;
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/bad\.yaml:7:\d+: .*mtu/);
      }
      const after = await ns.ip('-j', '-d', 'link', 'show') + (await ns.ip('-j', 'addr', 'show')) + (await ns.ip('-j', 'route', 'show', 'table', 'all'));
      expect(after).toBe(before);
      await rm(bad);
    });

    it('a removed declaration removes its device and its routes; foreign objects stay', async () => {
      const before = await foreignSnapshot(ns);
      const empty = join(dir, 'other.yaml');
      await writeFile(empty, decl().replace(/tk-edge0/g, 'tk-other0').replace('203.0.113.0/25', '203.0.113.0/26'));
      await rm(file);
      const r = await apply(ns, empty);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/-\s+device\s+ifindex \d+, marker tunkeeper:tk-edge0/);
      expect(await link(ns, 'tk-edge0')).toBeUndefined();
      expect((await ownedRoutes(ns)).every((x) => x.dev === 'tk-other0')).toBe(true);
      expect(await foreignSnapshot(ns)).toBe(before);
    });
  });
});
