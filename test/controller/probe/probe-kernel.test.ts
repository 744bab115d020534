/**
 * ProbeRunner against the real kernel, each case in a namespace of its own: a TUN device tk-edge0
 * with 192.0.2.1/24 and 2001:db8:1::1/64 and tunkeeper's routes through it (proto 116), then the
 * ways the kernel can disagree with the declaration — a foreign more-specific route, a policy
 * rule to another table, no carrier, ping sockets refused by ping_group_range — and a route that
 * appears while the runner is retrying.
 */
import { expect, it } from '@jest/globals';
import { ProbeRunner, systemProbeClock, type ProbeClock } from '../../../controller/probe/index.js';
import { DEFAULT_POLICY, type DesiredProbe } from '../../../controller/model/desired.js';
import { Tun } from '../../../tun-native/index.js';
import { device } from '../../helpers/devices.js';
import { EchoResponder } from '../../helpers/echo-responder.js';
import { withNetns, type Netns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';

const IFNAME = 'tk-edge0';

function edge(probes: DesiredProbe[], probeTimeoutSeconds = 30) {
  return device('edge', { ifname: IFNAME, probes, rollout: { maxUnavailable: 1, probeTimeoutSeconds } });
}
const route = (to: string): DesiredProbe => ({ kind: 'route', family: to.includes(':') ? 6 : 4, to });
const ping = (to: string): DesiredProbe => ({ kind: 'ping', family: to.includes(':') ? 6 : 4, to });

/**
 * The persistent TUN device with its addresses and routes. Nobody holds it yet: a test attaches
 * the echo responder (or a plain handle) for carrier.
 */
async function tunWorld(ns: Netns): Promise<void> {
  const tun = await Tun.open({ name: IFNAME, mode: 'tun', persist: true, netns: ns.name });
  await tun.close();
  await ns.ip('link', 'set', IFNAME, 'up');
  await ns.ip('addr', 'add', '192.0.2.1/24', 'dev', IFNAME);
  await ns.ip('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', IFNAME, 'nodad');
  await ns.ip('route', 'add', '198.51.100.0/24', 'via', '192.0.2.254', 'dev', IFNAME, 'proto', '116');
  await ns.ip('-6', 'route', 'add', '2001:db8:100::/48', 'dev', IFNAME, 'proto', '116');
}

/** A second link for foreign routes: a veth pair, its end tk-b0 with 203.0.113.1/25. */
async function otherLink(ns: Netns): Promise<void> {
  await ns.ip('link', 'add', 'tk-b0', 'type', 'veth', 'peer', 'name', 'tk-b1');
  await ns.ip('link', 'set', 'tk-b0', 'up');
  await ns.ip('link', 'set', 'tk-b1', 'up');
  await ns.ip('addr', 'add', '203.0.113.1/25', 'dev', 'tk-b0');
}

async function allowPing(ns: Netns): Promise<void> {
  await ns.exec('sysctl', ['-w', 'net.ipv4.ping_group_range=0 2147483647']);
}

/** A namespace with the world, a runner in it and a handle holding the device (carrier); all gone afterwards. */
function scenario(fn: (ns: Netns, runner: ProbeRunner) => Promise<void>, opts: { clock?: ProbeClock; hold?: boolean } = {}): Promise<void> {
  return withNetns(async (ns) => {
    await tunWorld(ns);
    const holder = opts.hold === false ? undefined : await Tun.open({ name: IFNAME, mode: 'tun', netns: ns.name });
    const runner = new ProbeRunner({ netns: ns.name, policy: DEFAULT_POLICY, ...(opts.clock ? { clock: opts.clock } : {}) });
    try {
      await fn(ns, runner);
    } finally {
      runner.close();
      await holder?.close();
    }
  }, 'probe');
}

describeKernel('route probe: the kernel lookup must leave through the device', () => {
  it('passes for the declared routes through the tk- device, IPv4 and IPv6, in the words of the kernel', () =>
    scenario(async (_ns, runner) => {
      const results = await runner.run(edge([route('198.51.100.7'), route('2001:db8:100::7')]));
      expect(results.map((r) => [r.probe, r.passed, r.attempts, r.message])).toEqual([
        ['route 198.51.100.7', true, 1, '198.51.100.7 → next hop 192.0.2.254 dev tk-edge0 via its route 198.51.100.0/24'],
        ['route 2001:db8:100::7', true, 1, '2001:db8:100::7 → dev tk-edge0 via its route 2001:db8:100::/48'],
      ]);
      expect(Number.isNaN(Date.parse(results[0]!.at))).toBe(false);
    }));

  it('fails when a foreign more-specific route (proto static) shadows it, naming that route', () =>
    scenario(async (ns, runner) => {
      await otherLink(ns);
      await ns.ip('route', 'add', '198.51.100.0/25', 'via', '203.0.113.126', 'dev', 'tk-b0', 'proto', 'static');
      const [r] = await runner.run(edge([route('198.51.100.7')], 1));
      expect(r).toMatchObject({ passed: false, message: '198.51.100.7 → next hop 203.0.113.126 dev tk-b0 via a foreign route 198.51.100.0/25 proto static' });
      expect(r!.attempts).toBeGreaterThanOrEqual(1);
      // The rest of the declared prefix still leaves through the device.
      const [other] = await runner.once(edge([route('198.51.100.130')]));
      expect(other).toMatchObject({ passed: true, attempts: 1 });
    }));

  it('fails when a policy rule sends the address to another table, naming the table', () =>
    scenario(async (ns, runner) => {
      await otherLink(ns);
      await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'tk-b0', 'table', '100', 'proto', 'static');
      await ns.ip('rule', 'add', 'to', '198.51.100.7', 'lookup', '100', 'pref', '1000');
      const [r] = await runner.once(edge([route('198.51.100.7')]));
      expect(r).toMatchObject({ passed: false, message: '198.51.100.7 → dev tk-b0 via a foreign route 198.51.100.0/24 proto static in table 100' });
    }));

  it('says so when there is no route at all, and when a blackhole route takes the address', () =>
    scenario(async (ns, runner) => {
      await ns.ip('route', 'add', 'blackhole', '198.51.100.0/26', 'proto', 'static');
      const results = await runner.once(edge([route('203.0.113.200'), route('198.51.100.7')]));
      expect(results.map((r) => [r.passed, r.message])).toEqual([
        [false, '203.0.113.200 → no route (the kernel answered ENETUNREACH: network is unreachable)'],
        [false, '198.51.100.7 → a blackhole route (the kernel answered EINVAL: invalid argument)'],
      ]);
    }));

  it('retries: fails while there is no route, passes once the route appears', async () => {
    // The route is added only after the runner's first attempt failed and it went to sleep: the
    // clock tells when (the system clock, observed, not replaced).
    let firstSleep: () => void = () => undefined;
    const sleeping = new Promise<void>((resolve) => (firstSleep = resolve));
    const clock: ProbeClock = {
      now: () => systemProbeClock.now(),
      setTimer(ms, fn) {
        firstSleep();
        return systemProbeClock.setTimer(ms, fn);
      },
    };
    await scenario(
      async (ns, runner) => {
        const run = runner.run(edge([route('203.0.113.7')]));
        await sleeping;
        await ns.ip('route', 'add', '203.0.113.0/24', 'dev', IFNAME, 'proto', '116');
        const [r] = await run;
        expect(r).toMatchObject({ passed: true, message: '203.0.113.7 → dev tk-edge0 via its route 203.0.113.0/24' });
        expect(r!.attempts).toBeGreaterThanOrEqual(2);
      },
      { clock },
    );
  });

  it('a run is cancelled by its signal, and by closing the runner', () =>
    scenario(async (_ns, runner) => {
      const ac = new AbortController();
      const run = runner.run(edge([route('203.0.113.7'), ping('192.0.2.254')]), undefined, ac.signal);
      const reason = new Error('superseded');
      ac.abort(reason);
      await expect(run).rejects.toBe(reason);
      const pending = runner.run(edge([route('203.0.113.7')]));
      runner.close();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
      await expect(runner.once(edge([route('198.51.100.7')]))).rejects.toMatchObject({ name: 'AbortError' });
    }));
});

describeKernel('ping probe: an echo through the device must be answered', () => {
  it('passes through a TUN answered by the echo responder (IPv4 and IPv6); fails once it stopped', () =>
    scenario(
      async (ns, runner) => {
        await allowPing(ns);
        const responder = await EchoResponder.start(ns, IFNAME);
        let stopped = false;
        try {
          const results = await runner.run(edge([ping('192.0.2.254'), ping('2001:db8:1::fe')]));
          expect(results.map((r) => [r.probe, r.passed])).toEqual([
            ['ping 192.0.2.254', true],
            ['ping 2001:db8:1::fe', true],
          ]);
          expect(results[0]!.message).toMatch(/^192\.0\.2\.254 answered an echo through tk-edge0 in [\d.]+ ms$/);
          expect(responder.answered).toBeGreaterThanOrEqual(2);
          await responder.stop();
          stopped = true;
          const after = await runner.run(edge([ping('192.0.2.254'), ping('2001:db8:1::fe')], 2));
          expect(after.map((r) => r.passed)).toEqual([false, false]);
          expect(after[0]!.message).toMatch(/^192\.0\.2\.254 did not answer an echo through tk-edge0 within \d+ ms$/);
          expect(after[1]!.message).toMatch(/^(2001:db8:1::fe did not answer an echo through tk-edge0 within \d+ ms|echo to 2001:db8:1::fe through tk-edge0 failed: .+)$/);
        } finally {
          if (!stopped) await responder.stop();
        }
      },
      { hold: false },
    ));

  it('fails with the ping_group_range explanation and its fix while the namespace has the kernel default', () =>
    scenario(async (_ns, runner) => {
      const [r] = await runner.once(edge([ping('192.0.2.254')]));
      expect(r!.passed).toBe(false);
      expect(r!.message).toContain('outside net.ipv4.ping_group_range ("1 0" there)');
      expect(r!.message).toContain('sysctl -w net.ipv4.ping_group_range="0 2147483647"');
      expect(r!.message).toMatch(/^echo to 192\.0\.2\.254 through tk-edge0 failed: open an ICMP ping socket in network namespace \/run\/netns\/\S+: EACCES/);
    }));

  it('fails when the device does not exist', () =>
    withNetns(async (ns) => {
      await allowPing(ns);
      const runner = new ProbeRunner({ netns: ns.name, policy: DEFAULT_POLICY });
      try {
        const [r] = await runner.once(edge([ping('192.0.2.254')]));
        expect(r).toMatchObject({ passed: false, message: 'echo to 192.0.2.254 through tk-edge0 failed: tk-edge0 does not exist' });
      } finally {
        runner.close();
      }
    }, 'probe'));
});
