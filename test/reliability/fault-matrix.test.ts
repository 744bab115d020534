/**
 * Fault matrix: every operation the controller performs × {EINTR, ENOBUFS, EBUSY, EEXIST, ESRCH,
 * ENODEV, EPERM, EINVAL}, injected into a fake kernel (the KernelModel behind FakeNetlinkSocket
 * and a TUN opener), with the real client, observe, plan, apply and ReconcileLoop on a ManualClock.
 *
 * - transient (the first two requests fail): the loop converges within a few retries;
 * - persistent: the device the fault hits is Degraded, with the kernel's errno and message, its
 *   retry backoff grows to the cap and stays there, and the other device stays Ready.
 * Where the right outcome differs, the test says so and checks that instead:
 *   - ENOBUFS on a request is a lost answer: the change was made, so even a persistent fault
 *     converges (the next pass finds nothing to do);
 *   - "gone" errnos on a delete (ESRCH/ENODEV on a route, ENODEV on an address or link) are
 *     success: the goal is absence, and the kernel said it is absent;
 *   - a dump is not about one device: a faulty dump makes the whole pass untrustworthy, nothing
 *     is applied (nor pruned), and the pass is retried with the same capped backoff;
 *   - ENODEV from RTM_GETLINK is how the kernel says "no such link": creating proceeds, but a
 *     device that cannot be looked up after TUNSETIFF is never adopted (EEXIST, closed again).
 */
import { describe, expect, it } from '@jest/globals';
import type { DesiredDevice } from '../../controller/model/desired.js';
import { LOOP_DEFAULTS, ManualClock, ReconcileLoop, UNDECLARED_RETRY_PREFIX, type PassReport } from '../../controller/loop/index.js';
import { RTPROT_BOOT } from '../../controller/model/observed.js';
import { plan } from '../../controller/plan/index.js';
import { createReconciler } from '../../controller/reconcile/reconcile.js';
import type { DeviceReport, ReconcileResult } from '../../controller/reconcile/types.js';
import { KernelModel } from '../helpers/kernel-model.js';
import { POLICY, addr, device, route } from '../controller/plan/fixtures.js';
import { FAULT_ERRNOS, FakeKernel, type FaultErrno, type FaultOp } from './helpers/fake-kernel.js';

/** What the world looks like before, what is declared after, and which device the fault hits. */
interface Scenario {
  before: DesiredDevice[];
  after: DesiredDevice[];
  /** ifname the fault is limited to; absent for whole-pass operations. */
  target?: string;
}

const a0 = (o: Partial<DesiredDevice> = {}) => device('a0', o);
const b0 = (o: Partial<DesiredDevice> = {}) => device('b0', o);
const addrs = { a: [addr('192.0.2.1/24'), addr('2001:db8:a::1/64')], b: [addr('198.51.100.1/24')] };
const routes = { a: [route('203.0.113.0/25', { via: '192.0.2.254' })], b: [route('203.0.113.128/25')] };

const SCENARIOS: Record<Exclude<FaultOp, 'socket-open'>, Scenario> = {
  dump: { before: [a0(), b0()], after: [b0({ mtu: 1400 })] },
  'link-get': { before: [], after: [a0(), b0()], target: 'tk-a0' },
  'link-set': { before: [a0(), b0()], after: [a0({ mtu: 1400 }), b0({ mtu: 1400 })], target: 'tk-a0' },
  'link-delete': { before: [a0(), b0(), device('c0')], after: [b0()], target: 'tk-a0' },
  'address-add': { before: [a0(), b0()], after: [a0({ addresses: addrs.a }), b0({ addresses: addrs.b })], target: 'tk-a0' },
  'address-delete': { before: [a0({ addresses: addrs.a }), b0({ addresses: addrs.b })], after: [a0(), b0()], target: 'tk-a0' },
  'route-replace': {
    before: [a0({ addresses: addrs.a }), b0({ addresses: addrs.b })],
    after: [a0({ addresses: addrs.a, routes: routes.a }), b0({ addresses: addrs.b, routes: routes.b })],
    target: 'tk-a0',
  },
  'route-delete': {
    before: [a0({ addresses: addrs.a, routes: routes.a }), b0({ addresses: addrs.b, routes: routes.b })],
    after: [a0({ addresses: addrs.a }), b0({ addresses: addrs.b })],
    target: 'tk-a0',
  },
  'tun-create': { before: [], after: [a0(), b0()], target: 'tk-a0' },
  'tun-attach': { before: [a0(), b0()], after: [a0({ owner: 1000 }), b0({ owner: 1000 })], target: 'tk-a0' },
};

/** A host: loopback, a NIC with an address and a foreign default route. */
function host(): KernelModel {
  const k = new KernelModel();
  k.addLink({ ifname: 'lo', up: true, mtu: 65536, txQueueLength: 1000 });
  const eth = k.addLink({ ifname: 'eth0', kind: 'veth', up: true, mtu: 1500, txQueueLength: 1000, macAddress: '52:54:00:12:34:56' });
  k.addAddress(eth.ifindex, 4, '203.0.113.10', 24, {});
  k.addRoute({ family: 4, table: 254, dst: '0.0.0.0', dstLength: 0, protocol: RTPROT_BOOT, oif: eth.ifindex, gateway: '203.0.113.1' }, 'add');
  return k;
}

/** eth0, its addresses and routes, as they must stay. */
function foreignOf(k: KernelModel): string {
  const st = k.state();
  const eth = st.links.find((l) => l.ifname === 'eth0')!;
  return JSON.stringify([eth, st.addresses.filter((x) => x.ifindex === eth.ifindex), st.routes.filter((r) => r.oif === eth.ifindex)]);
}
const FOREIGN = foreignOf(host());

const JITTER_HALF = 0.5;
const CAP = Math.round(LOOP_DEFAULTS.retry.maxMs * (1 - (LOOP_DEFAULTS.retry.jitter ?? 0.2) * JITTER_HALF));

interface Run {
  kernel: FakeKernel;
  passes: PassReport[];
  retries: Array<{ key: string; attempt: number; delay: number }>;
  last: ReconcileResult | undefined;
  /** A fresh plan against the kernel now: what is still not as declared. */
  pending: () => string[];
  foreign: () => string;
  stop: () => Promise<void>;
}

/** Converges `before` without faults, then runs the loop on `after` with the fault for `steps` passes. */
async function run(s: Scenario, op: FaultOp, errno: FaultErrno, times: number, steps: number): Promise<Run> {
  const kernel = new FakeKernel(host());
  const rtnl = await kernel.openRtnl({ dumpAttempts: 3 });
  const rec = createReconciler({ policy: POLICY, rtnl, tun: kernel.tun });
  const setup = await rec.reconcile({ desired: s.before, prune: true });
  expect(setup.failures).toEqual([]);
  kernel.fault({ op, errno, times, ...(s.target !== undefined ? { ifname: s.target } : {}), extAck: `injected ${errno} on ${op}` });

  const clock = new ManualClock(0);
  const passes: PassReport[] = [];
  const retries: Run['retries'] = [];
  const loop = new ReconcileLoop({
    reconcile: rec.reconcile,
    sources: ['files'],
    clock,
    random: () => JITTER_HALF,
    resyncIntervalMs: 0,
    observer: { passFinished: (p) => passes.push(p), retryScheduled: (key, attempt, delay) => retries.push({ key, attempt, delay }) },
  });
  loop.start();
  loop.updateSource('files', s.after, true);
  await loop.idle();
  while (passes.length < steps) {
    const next = clock.pending()[0];
    // Nothing to retry: the periodic resync would look again; do it now.
    if (next === undefined) loop.trigger('periodic');
    else clock.advance(next - clock.now());
    await loop.idle();
  }
  return {
    kernel,
    passes,
    retries,
    get last() {
      return passes.at(-1)?.result;
    },
    pending: () => plan(s.after, kernel.model.state(), POLICY).actions.map((a) => `${a.type} ${a.ifname ?? ''}`),
    foreign: () => foreignOf(kernel.model),
    stop: async () => {
      await loop.stop();
      rec.close();
      rtnl.close();
    },
  };
}

const status = (r: ReconcileResult | undefined, name: string): DeviceReport | undefined => r?.devices.find((d) => d.device === name);

/** Outcomes that differ from "fails like any error", per operation. */
function isGone(op: FaultOp, errno: FaultErrno): boolean {
  return (op === 'route-delete' && (errno === 'ESRCH' || errno === 'ENODEV')) || ((op === 'address-delete' || op === 'link-delete') && errno === 'ENODEV');
}
/** A change whose answer is lost is made all the same (a lost read is just a failed read). */
const isLostAnswer = (op: FaultOp, errno: FaultErrno): boolean => errno === 'ENOBUFS' && op !== 'dump' && op !== 'link-get' && !op.startsWith('tun-');

/** Every TUN/TAP link in the model carries a marker and is persistent: nothing half-made stays. */
function orphans(k: FakeKernel): string[] {
  return k.model
    .state()
    .links.filter((l) => l.kind === 'tun' && (l.alias?.startsWith('tunkeeper:') !== true || l.tun?.persist !== true))
    .map((l) => l.ifname);
}

/** Backoff: grows, never beyond the cap, and reaches it (attempt 9: 256 s > 120 s) and stays. */
function expectCappedBackoff(mine: Run['retries']): void {
  expect(mine.length).toBeGreaterThanOrEqual(10);
  for (let i = 1; i < mine.length; i++) expect(mine[i]!.delay).toBeGreaterThanOrEqual(mine[i - 1]!.delay);
  expect(Math.max(...mine.map((x) => x.delay))).toBe(CAP);
  expect(mine.at(-1)!.delay).toBe(CAP);
}

describe('fault matrix: transient faults converge within a few retries', () => {
  for (const op of Object.keys(SCENARIOS) as Array<keyof typeof SCENARIOS>) {
    for (const errno of FAULT_ERRNOS) {
      it(`${op} × ${errno}`, async () => {
        const s = SCENARIOS[op];
        const r = await run(s, op, errno, 2, 6);
        try {
          expect(r.kernel.fired.get(`${op} ${errno}`) ?? 0).toBeGreaterThan(0);
          // Converged: the last pass had nothing left to fail, and a fresh plan has nothing to do.
          expect(r.last?.outcome).toBe('converged');
          expect(r.pending()).toEqual([]);
          for (const d of s.after) expect(status(r.last, d.name)?.status).toBe('ready');
          // Within a few retries: the passes that still failed are at most the faults injected (+1 for a lost answer).
          const failing = r.passes.filter((p) => p.result?.outcome !== 'converged').length;
          expect(failing).toBeLessThanOrEqual(3);
          expect(orphans(r.kernel)).toEqual([]);
          expect(r.foreign()).toBe(FOREIGN);
        } finally {
          await r.stop();
        }
      });
    }
  }
});

describe('fault matrix: persistent faults degrade only their device, with capped backoff and the kernel message', () => {
  for (const op of Object.keys(SCENARIOS) as Array<keyof typeof SCENARIOS>) {
    for (const errno of FAULT_ERRNOS) {
      it(`${op} × ${errno}`, async () => {
        const s = SCENARIOS[op];
        const r = await run(s, op, errno, Infinity, 14);
        try {
          expect(r.kernel.fired.get(`${op} ${errno}`) ?? 0).toBeGreaterThan(0);
          expect(orphans(r.kernel)).toEqual([]);
          expect(r.foreign()).toBe(FOREIGN);
          if (isLostAnswer(op, errno) || isGone(op, errno)) {
            // The change is made (or, for a delete, the kernel says there is nothing to delete):
            // reported as done, nothing retried forever.
            expect(r.last?.outcome).toBe('converged');
            for (const d of s.after) expect(status(r.last, d.name)?.status).toBe('ready');
            if (!isGone(op, errno)) expect(r.pending()).toEqual([]);
            expect(Object.keys(r.retries.filter((x) => x.attempt > 3))).toEqual([]);
            return;
          }
          // A failing deletion of an undeclared device has its own test below (known loop bug).
          if (op !== 'link-delete') expectCappedBackoff(r.retries.filter((x) => x.key === (s.target === undefined ? '' : 'a0')));
          if (op === 'dump') {
            // Fail static: nothing applied from an untrustworthy observation, nothing pruned.
            expect(r.last?.outcome).toBe('interrupted');
            expect(r.kernel.model.linkByName('tk-a0')).toBeDefined();
            expect(r.kernel.model.linkByName('tk-b0')?.mtu).toBe(1500);
            return;
          }
          if (op === 'link-delete') {
            // No declared device to degrade: the undeclared tk-a0 stays (it is retried), tk-c0 went.
            expect(r.kernel.model.linkByName('tk-a0')).toBeDefined();
            expect(r.kernel.model.linkByName('tk-c0')).toBeUndefined();
            expect(r.last?.failures.map((f) => [f.action.type, f.code, f.message])).toEqual([['delete-device', errno, `injected ${errno} on ${op}`]]);
            expect(status(r.last, 'b0')?.status).toBe('ready');
            return;
          }
          const a = status(r.last, 'a0');
          expect(a?.status).toBe('degraded');
          const first = a!.failures.find((f) => f.code !== 'Skipped');
          expect(first).toBeDefined();
          if (op.startsWith('tun-')) {
            expect(first!.code).toBe(errno);
            expect(first!.message).toContain(`TUNSETIFF) failed for tk-a0: ${errno}`);
          } else if (op === 'link-get') {
            // The lookup before creating (by name) or after it (by index) failed: nothing adopted.
            expect([errno, 'EEXIST']).toContain(first!.code);
          } else {
            expect(first!.code).toBe(errno);
            expect(first!.message).toBe(`injected ${errno} on ${op}`);
          }
          expect(status(r.last, 'b0')?.status).toBe('ready');
          // b0 was never retried twice in a row. (A lost answer fails everything in flight with it,
          // b0's lookups included, so under ENOBUFS b0 may miss a pass, but never stays behind.)
          if (errno !== 'ENOBUFS') expect(r.retries.filter((x) => x.key === 'b0' && x.attempt > 1)).toEqual([]);
        } finally {
          await r.stop();
        }
      });
    }
  }
});

/**
 * Regression (found by this matrix): a device no longer declared whose deletion kept failing was
 * retried under the pass key '', which every pass that ran clears and re-arms at attempt 1, so it
 * was retried every ~1 s forever instead of backing off to the cap. It has a key of its own now.
 */
describe('fault matrix: a persistently failing deletion of an undeclared device', () => {
  it('backs off to the cap like any other persistent failure', async () => {
    const r = await run(SCENARIOS['link-delete'], 'link-delete', 'EBUSY', Infinity, 14);
    try {
      expect(r.kernel.model.linkByName('tk-a0')).toBeDefined();
      expectCappedBackoff(r.retries.filter((x) => x.key.startsWith(UNDECLARED_RETRY_PREFIX)));
    } finally {
      await r.stop();
    }
  });
});
