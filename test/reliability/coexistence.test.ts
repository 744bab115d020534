/**
 * Coexistence: another actor (a loop in this test, standing for a misbehaving daemon or an
 * operator's script) keeps deleting an owned route and resetting the MTU of an owned device while
 * `tunkeeper run` watches. tunkeeper must repair (the state comes back once the actor stops),
 * with backoff (the passes over the window are bounded: far fewer than the actor's changes), say
 * so (the fights metric, a warning in the log) and never spin.
 */
import { expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { Agent, eventually, sample, sleep, tunDeviceYaml } from './helpers/agent.js';
import { hangGuardMs, scale } from './helpers/scale.js';
import { LOOP_DEFAULTS } from '../../controller/loop/index.js';

const WINDOW_MS = scale(8_000, 60_000);
const ACTOR_PERIOD_MS = 100;
const ACTOR_TICKS = WINDOW_MS / ACTOR_PERIOD_MS;
/**
 * The hang guard, from the count: a tick is the pause and two `ip` runs (~0.15 s here, ~0.2 s on a
 * busy machine); 1 s each is generous. Only a guard against a hang; nothing is timed by it.
 */
const HANG_GUARD_MS = hangGuardMs(ACTOR_TICKS, 1_000);
/**
 * The passes the loop's own rules allow while the actor is at it (controller/loop/loop.ts, Churn and
 * Fights), so the bound follows the machine's speed instead of a fixed slack:
 * - event-woken passes that apply nothing continue the churn streak: once it is long, at most one
 *   per churn.maxMs of the actor's activity;
 * - each repair (the first one, then one per hold that ends) applies a change and resets the streak,
 *   which then costs the short gaps again: the hold-ended pass itself, one at once, one after
 *   churn.initialMs; 3 per repair episode, and the passes that see a repair's own notifications;
 * - the trailing edge (a pass once the kernel is quiet for quietMs): the repair re-arms it, and the
 *   actor's next pause spends it on a pass that finds the device held: one more per episode;
 * - a couple at the edges of the window.
 * A spin answers every actor change: ACTOR_TICKS passes or more.
 */
const EPISODE_PASSES = 5;
function maxPasses(activeMs: number, fights: number): number {
  return Math.ceil(activeMs / LOOP_DEFAULTS.churn.maxMs) + EPISODE_PASSES * (fights + 1) + 2;
}

const FOUGHT = { name: 'f0', ifname: 'tk-f0', mtu: 1400, addresses: ['192.0.2.1/24'], routes: ['198.51.100.0/24'] };
const QUIET = { name: 'q0', ifname: 'tk-q0', mtu: 1400, addresses: ['203.0.113.1/24'], routes: ['198.51.100.128/25'] };

async function state(ns: Netns, d: typeof FOUGHT): Promise<string> {
  const [l] = await ns.ipJson<Array<{ mtu: number }>>('link', 'show', 'dev', d.ifname);
  const routes = await ns.ipJson<Array<{ dst: string }>>('route', 'show', 'dev', d.ifname, 'proto', '116');
  return `mtu ${l?.mtu} routes ${routes.map((r) => r.dst).join(' ')}`;
}
const declared = (d: typeof FOUGHT) => `mtu ${d.mtu} routes ${d.routes.join(' ')}`;

describeKernel('coexistence with another actor changing owned state', () => {
  it('repairs with backoff, reports the fight, and never spins', async () => {
    await withNetns(async (ns) => {
      const dir = await mkdtemp(join(tmpdir(), 'tk-coexist-'));
      await writeFile(join(dir, 'devices.yaml'), [tunDeviceYaml(FOUGHT), tunDeviceYaml(QUIET)].join('---\n'));
      const agent = new Agent(['-f', dir, '--netns', ns.name]);
      try {
        await eventually(agent.p, 'the declared devices', async () =>
          (await state(ns, FOUGHT)) === declared(FOUGHT) && (await state(ns, QUIET)) === declared(QUIET) ? true : undefined,
        );
        const before = await agent.metrics();
        const passes0 = sample(before, 'tunkeeper_reconciles_total');

        // The other actor: every 100 ms, the route goes and the MTU is reset; a fixed number of
        // times, so that how many changes it makes does not depend on how fast `ip` runs on a busy
        // machine (a window of wall-clock time once gave 40 changes instead of ~160, and the
        // passes-per-change bound below then measured the machine, not the agent).
        let actions = 0;
        const started = Date.now();
        for (let tick = 0; tick < ACTOR_TICKS; tick++) {
          await ns.ip('route', 'del', FOUGHT.routes[0]!, 'dev', FOUGHT.ifname, 'proto', '116').catch(() => undefined);
          await ns.ip('link', 'set', FOUGHT.ifname, 'mtu', '1300');
          actions += 2;
          await sleep(ACTOR_PERIOD_MS);
        }
        /** How long the actor was at it: WINDOW_MS on a quiet machine, longer on a busy one. */
        const activeMs = Date.now() - started;
        const during = await agent.metrics();
        const passes = sample(during, 'tunkeeper_reconciles_total') - passes0;
        const repairs = sample(during, 'tunkeeper_drift_repairs_total') - sample(before, 'tunkeeper_drift_repairs_total');

        // The actor stopped: tunkeeper puts the state back (after its current hold at most).
        await eventually(agent.p, 'the fought device repaired', async () => ((await state(ns, FOUGHT)) === declared(FOUGHT) ? true : undefined), 200);
        expect(await state(ns, QUIET)).toBe(declared(QUIET));

        const after = await agent.metrics();
        const fights = sample(after, 'tunkeeper_device_fights_total', 'device="f0"');
        const warnings = agent.logs(/keeps being changed behind tunkeeper's back/);
        console.log(`coexistence: ${actions} changes by the other actor in ${activeMs} ms; ${passes} passes, ${repairs} repairs, ${fights} fights reported, ${warnings.length} warnings`);
        expect(repairs).toBeGreaterThan(0);
        expect(fights).toBeGreaterThan(0);
        expect(warnings.length).toBeGreaterThan(0);
        expect(warnings[0]).toMatchObject({ device: 'f0' });
        // Never spins: with holds growing 1 s, 2 s, 4 s ... the passes are what the loop's churn gap
        // and the repair episodes allow (maxPasses), far fewer than the actor's ticks.
        const fightsDuring = sample(during, 'tunkeeper_device_fights_total', 'device="f0"');
        expect(passes).toBeLessThanOrEqual(maxPasses(activeMs, fightsDuring));
        expect(passes).toBeLessThan(ACTOR_TICKS);
        expect(sample(after, 'tunkeeper_device_fights_total', 'device="q0"')).toBe(0);
        expect(await agent.stop()).toEqual({ code: 0, signal: null });
      } finally {
        await agent.stop().catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      }
    }, 'coexist');
  }, HANG_GUARD_MS);
});
