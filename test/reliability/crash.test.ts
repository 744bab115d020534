/**
 * Crash consistency: `tunkeeper apply` of hundreds of devices is SIGKILLed at random points, again
 * and again, then run to the end. Whatever moment the kill hits:
 *   - no orphaned owned object: every marked link is declared, every route of tunkeeper's
 *     protocol goes through a declared device, and no unmarked TUN device was left behind (the
 *     marker goes on before TUNSETPERSIST);
 *   - no duplicates: each declared address and route exists once;
 *   - no foreign object touched (byte-identical `ip -j -d`, counters aside);
 *   - no delete-and-recreate: a device that was complete before a kill keeps its ifindex.
 */
import { expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess, runCli } from '../helpers/cli.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { sleep, tunDeviceYaml } from './helpers/agent.js';
import { hangGuardMs, scale } from './helpers/scale.js';
import { MARKER, foreignOf, ownedLinks, ownedRoutes, snapshot, type Snapshot } from './helpers/snapshot.js';

const DEVICES = scale(200, 500);
const KILLS = scale(4, 15);
/**
 * The hang guard, from the counts: KILLS interrupted applies and the final one, each at most a
 * whole apply of DEVICES devices; 50 ms a device is generous (the CI size, 5 applies of 200
 * devices, takes 11-27 s on this 2-core machine). A guard against a hang only.
 */
const HANG_GUARD_MS = hangGuardMs(KILLS + 1, DEVICES * 50);

interface Decl {
  name: string;
  ifname: string;
  address: string;
  route: string;
}

function decl(i: number): Decl {
  return {
    name: `c${i}`,
    ifname: `tk-c${i}`,
    address: `198.18.${i >> 6}.${(i & 63) * 4 + 1}/30`,
    route: `198.19.${i >> 8}.${i & 255}/32`,
  };
}

/** Foreign state: a veth pair with addresses and routes, a TUN and a TAP not ours, a link with a look-alike alias. */
async function foreignWorld(ns: Netns): Promise<void> {
  await ns.ip('link', 'add', 'fx0', 'type', 'veth', 'peer', 'name', 'fx1');
  // No kernel link-local addresses appearing later on their own (they would look like a change).
  await ns.ip('link', 'set', 'fx0', 'addrgenmode', 'none');
  await ns.ip('link', 'set', 'fx1', 'addrgenmode', 'none');
  await ns.ip('address', 'add', '203.0.113.1/24', 'dev', 'fx0');
  await ns.ip('address', 'add', '2001:db8:f::1/64', 'dev', 'fx0', 'nodad');
  await ns.ip('link', 'set', 'fx0', 'up');
  await ns.ip('link', 'set', 'fx1', 'up');
  await ns.ip('route', 'add', '198.51.100.0/24', 'via', '203.0.113.254', 'proto', 'boot');
  await ns.ip('route', 'add', '198.51.100.0/24', 'via', '203.0.113.253', 'proto', 'static', 'metric', '50');
  await ns.ip('route', 'add', 'blackhole', '192.0.2.0/28', 'proto', 'static');
  await ns.ip('tuntap', 'add', 'mode', 'tun', 'tk-foreign');
  await ns.ip('tuntap', 'add', 'mode', 'tap', 'tk-foreign-tap');
  await ns.ip('link', 'set', 'tk-foreign-tap', 'alias', 'tunkeeper-not:me');
}

/** The same snapshot twice in a row: addrconf and the like are done. */
async function settled(ns: Netns): Promise<Snapshot> {
  let prev = JSON.stringify(foreignOf(await snapshot(ns)));
  for (;;) {
    await sleep(200);
    const s = await snapshot(ns);
    const now = JSON.stringify(foreignOf(s));
    if (now === prev) return s;
    prev = now;
  }
}

/** ifindex of every declared device that is already exactly as declared. */
function complete(s: Snapshot, decls: Decl[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of decls) {
    const l = s.links.find((x) => x.ifname === d.ifname);
    if (l === undefined || l.ifalias !== `${MARKER}${d.name}` || l.mtu !== 1400 || !l.flags.includes('UP')) continue;
    const a = s.addresses.find((x) => x.ifname === d.ifname)?.addr_info.some((x) => `${x.local}/${x.prefixlen}` === d.address);
    const r = s.routes.some((x) => x.dev === d.ifname && `${x.dst}${x.dst.includes('/') ? '' : '/32'}` === d.route && String(x.protocol) === '116');
    if (a === true && r) out.set(d.ifname, l.ifindex);
  }
  return out;
}

/** TUN/TAP links in the namespace (ours and the two foreign ones). */
async function tunCount(ns: Netns): Promise<number> {
  const out = await ns.ip('-br', 'link', 'show', 'type', 'tun').catch(() => '');
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

/** Waits for a random point of the apply (or its end); says which. */
async function killPoint(ns: Netns, p: CliProcess, round: number): Promise<string> {
  const exited = p.exited.then(() => true);
  const phase = round % 3;
  if (phase === 0) {
    const ms = 150 + Math.floor(Math.random() * 1500);
    await Promise.race([sleep(ms), exited]);
    return `start-up +${ms} ms`;
  }
  // Device creation: when some number of TUN devices exist.
  const now = await tunCount(ns);
  const target = phase === 1 ? now + 1 + Math.floor(Math.random() * (DEVICES + 2 - now)) : DEVICES + 2;
  while ((await tunCount(ns)) < target) {
    if (await Promise.race([exited, sleep(50).then(() => false)])) return 'after the end';
  }
  if (phase === 1) return `${target - 2} devices exist`;
  // After creation: somewhere in the link, address and route stages (they take a few hundred ms).
  const ms = Math.floor(Math.random() * 300);
  await Promise.race([sleep(ms), exited]);
  return `creation done +${ms} ms`;
}

describeKernel('crash consistency: SIGKILL during apply', () => {
  it(`kills apply of ${DEVICES} devices ${KILLS} times at random points; the final apply leaves no orphan, no duplicate, nothing foreign touched, nothing recreated`, async () => {
    await withNetns(async (ns) => {
      const dir = await mkdtemp(join(tmpdir(), 'tk-crash-'));
      try {
        const decls = Array.from({ length: DEVICES }, (_, i) => decl(i));
        await writeFile(
          join(dir, 'devices.yaml'),
          decls.map((d) => tunDeviceYaml({ name: d.name, ifname: d.ifname, mtu: 1400, addresses: [d.address], routes: [d.route] })).join('---\n'),
        );
        await foreignWorld(ns);
        const foreign = foreignOf(await settled(ns));

        /** ifname → ifindex of devices seen complete before some kill. */
        const done = new Map<string, number>();
        const killedAt: string[] = [];
        for (let k = 0; k < KILLS; k++) {
          const p = new CliProcess(['apply', '-f', dir, '--netns', ns.name]);
          // Random points across start-up, device creation and the link/address/route stages.
          const point = await killPoint(ns, p, k);
          p.kill('SIGKILL');
          const r = await p.exited;
          killedAt.push(r.signal === 'SIGKILL' ? point : 'finished first');
          const s = await snapshot(ns);
          // Every state a kill leaves is already safe: only declared, marked, persistent devices.
          for (const l of ownedLinks(s)) expect(decls.some((d) => `${MARKER}${d.name}` === l.ifalias && d.ifname === l.ifname)).toBe(true);
          const unmarkedTun = s.links.filter((l) => l.linkinfo?.info_kind === 'tun' && l.ifalias === undefined && l.ifname !== 'tk-foreign');
          expect(unmarkedTun.map((l) => l.ifname)).toEqual([]);
          for (const [ifname, ifindex] of complete(s, decls)) if (!done.has(ifname)) done.set(ifname, ifindex);
          expect(foreignOf(s)).toEqual(foreign);
        }

        const final = await runCli(['apply', '-f', dir, '--netns', ns.name]);
        expect(final.code).toBe(0);
        const s = await snapshot(ns);
        // Everything declared is there, once.
        expect(complete(s, decls).size).toBe(DEVICES);
        const links = ownedLinks(s);
        expect(links.length).toBe(DEVICES);
        const routes = ownedRoutes(s).map((r) => `${r.dst} ${r.dev}`);
        expect(new Set(routes).size).toBe(routes.length);
        expect(routes.length).toBe(DEVICES);
        for (const d of decls) {
          const addrs = s.addresses.find((x) => x.ifname === d.ifname)!.addr_info.filter((x) => x.family === 'inet');
          expect(addrs.map((x) => `${x.local}/${x.prefixlen}`)).toEqual([d.address]);
        }
        // No orphans: owned routes go through declared devices only.
        for (const r of ownedRoutes(s)) expect(decls.some((d) => d.ifname === r.dev)).toBe(true);
        // Nothing complete before a kill was deleted and made again.
        for (const [ifname, ifindex] of done) expect(`${ifname} ${s.links.find((l) => l.ifname === ifname)?.ifindex}`).toBe(`${ifname} ${ifindex}`);
        expect(foreignOf(s)).toEqual(foreign);
        console.log(`crash: ${KILLS} kills at ${killedAt.join('; ')}; ${done.size} of ${DEVICES} devices complete before a kill kept their ifindex`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 'crash');
  }, HANG_GUARD_MS);
});
