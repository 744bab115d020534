/**
 * rollout-probe-ms: with the agent running from files (`tunkeeper run -f DIR --state-dir TMP`)
 * beside the agent benchmarks' 100,000 foreign routes in main, the declaration of one TUN device
 * (an address, a route to 198.51.100.0/24 and a `route` probe of 198.51.100.7) is changed — a new
 * MTU, alternating between two values, written as editors and GitOps tools write it (a temporary
 * file, then a rename into the watched directory) — and the time until the agent has decided that
 * every probe of the new version passed is measured. 50 samples (`--samples N`; 200 with --long);
 * the figure is their p99 (median, p90 and max in the log). DESIGN.md's row for issue #14.
 *
 * Start and end. t0 is Date.now() just before the temporary file is written. t1 is the `time` of
 * the agent's own log line `<ifname>: every probe passed; this version is now the one to roll back
 * to`: pino takes it from Date.now() in the same tick as the decision (rollout/gate.ts accepts the
 * version and calls onProbed, which logs), so it is the decision itself, not when the bench reads
 * the line (stdout is a pipe, read later). Nothing outside the agent sees the decision earlier:
 * the RTM_GETROUTE probe makes no notification, the state-dir write and the probe counter on
 * /metrics come after it. Both clocks are the machine's wall clock, read in whole milliseconds
 * (the log's ISO time has ms), so a sample is good to ±1 ms; the figures are hundreds of ms.
 *
 * The log also splits each sample at the agent's own lines: t0 → `desired state read` (the file
 * source's watch and its debounce, then the scan), → `reconcile converged: 1 change applied` (the
 * pass: observe, plan, apply the MTU), → probes passed (the probe runner's lookups).
 *
 * The foreign routes: the same node the other agent benchmarks model (drift-repair-p99-ms,
 * enobufs-storm-converge-ms), where a desired-changed pass re-lists a full main table, so the
 * figures are comparable; setting them up costs a few seconds. The probe itself is one lookup in
 * the kernel's trie, which their number hardly changes.
 *
 * Reference: null. The work measured is the agent's: noticing a changed declaration, reading and
 * validating it, observing the node, planning and applying the difference, probing and remembering
 * the good version. `ip link set mtu` followed by `ip route get` until it answers through the
 * device is the kernel's part of that only (two ip processes, the lookup passes at the first
 * answer since an MTU does not move a route), so its ratio would say how much the agent does,
 * not how well; and it cannot run beside the measured agent without disturbing it (changing the
 * MTU of the agent's device is drift it repairs, another device needs another route to .7).
 * kubernetes-nmstate, the one tool with probes and rollback, needs a cluster and NetworkManager.
 *
 * Contention: a sample during which others took more than CONTENDED_SHARE of the agent's CPU is
 * taken again (up to TRIES times, and at most RETAKE_SHARE of the samples in all, as
 * drift-repair-p99-ms keeps spares for half its repairs); a sample is ~30 ticks of 10 ms, so the
 * share is good to about 3%. The log says how many were kept busy.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTENDED_SHARE, foreignShare, snapshot } from '../cpu-load.js';
import { median, percentile } from '../stats.js';
import type { Benchmark } from '../benchmark.js';
import { prepareControllerWorkload, startAgent, waitIdle, type RunningAgent } from '../controller-workload.js';

const IFNAME = 'tk-probe0';
const PROBED = '198.51.100.7';
/** Each sample declares the other one: a new version every time. */
const MTUS = [1380, 1400] as const;
const LONG_SAMPLES = 200;
/** Tries per sample when others keep taking the agent's CPU... */
const TRIES = 4;
/** ...and retakes in all, as a share of the samples, so a machine that stays busy cannot stretch the run fourfold. */
const RETAKE_SHARE = 0.5;
/** Creating the device leaves the kernel sending link notifications for a second or so (see drift-repair-p99-ms). */
const REST_MS = 2_500;
/** A change from rest: no pass for this long and none running. */
const QUIET_MS = 300;
/** A version whose probes have not passed by then is a failure, not a figure. */
const SAMPLE_TIMEOUT_MS = 30_000;

const PASSED = `${IFNAME}: every probe passed; this version is now the one to roll back to`;

function declaration(mtu: number): string {
  return [
    'apiVersion: tunkeeper.io/v1alpha1',
    'kind: TunDevice',
    'metadata:',
    '  name: probed',
    'spec:',
    `  ifname: ${IFNAME}`,
    '  mode: tun',
    `  mtu: ${mtu}`,
    '  addresses: [192.0.2.1/24]',
    '  routes:',
    '    - to: 198.51.100.0/24',
    '  probes:',
    `    - route: {to: ${PROBED}}`,
    '',
  ].join('\n');
}

/** One agent log line: its message, pino's time in epoch ms, and a pass's own duration when it gives one. */
interface LogLine {
  msg: string;
  at: number;
  durationMs?: number;
}

/** The agent's next log line, skipping what is not JSON. */
async function nextLog(agent: RunningAgent, deadline: number): Promise<LogLine> {
  for (;;) {
    const line = await agent.proc.nextLine(Math.max(1, deadline - Date.now()), 'the log line of its probes passing');
    try {
      const o = JSON.parse(line) as { msg?: unknown; time?: unknown; level?: unknown; durationMs?: unknown };
      if (typeof o.msg !== 'string' || typeof o.time !== 'string') continue;
      // A failed probe (rollback) would wait here until the timeout: say it at once.
      if (o.level === 'warn' && o.msg.startsWith(`${IFNAME}: probe `)) throw new Error(`the agent said: ${o.msg}`);
      return { msg: o.msg, at: Date.parse(o.time), ...(typeof o.durationMs === 'number' ? { durationMs: o.durationMs } : {}) };
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
    }
  }
}

/** When the agent logged its way through one version, in epoch ms (read and pass: the first after t0). */
interface Timeline {
  read?: number;
  applied?: number;
  /** The applying pass's own duration (its log line's durationMs): the rest of read → applied is waiting for it to start. */
  passMs?: number;
  passed: number;
}

/** Reads the log until the probes of the current version passed; earlier lines (a periodic rescan) are skipped by time. */
async function followVersion(agent: RunningAgent, t0: number): Promise<Timeline> {
  const deadline = Date.now() + SAMPLE_TIMEOUT_MS;
  const t: Partial<Timeline> = {};
  for (;;) {
    const { msg, at, durationMs } = await nextLog(agent, deadline);
    if (at < t0) continue;
    if (msg === 'desired state read') t.read ??= at;
    else if (t.applied === undefined && /^reconcile \w+: [1-9]\d* changes? applied$/.test(msg)) {
      t.applied = at;
      if (durationMs !== undefined) t.passMs = durationMs;
    }
    else if (msg === PASSED) return { ...t, passed: at };
  }
}

const ms = (x: number): string => `${x.toFixed(0)} ms`;

interface Sample {
  ms: number;
  t0: number;
  t: Timeline;
  /** Share of the agent's CPU that others took during the sample. */
  share: number;
}

function phasesOf({ t0, t }: Sample): string {
  const at = (x: number | undefined): string => (x === undefined ? 'not logged' : `+${ms(x - t0)}`);
  return `declaration read ${at(t.read)}, change applied ${at(t.applied)} (the pass took ${t.passMs === undefined ? '?' : ms(t.passMs)}), probes passed ${at(t.passed)}`;
}

export const rolloutProbeMs: Benchmark = {
  name: 'rollout-probe-ms',
  unit: 'ms',
  better: 'lower',
  description: 'p99 ms from a declaration change (a new MTU, file renamed into place) to the running agent deciding its route probe passed, 100k foreign routes in main',
  defaultSamples: 50,
  run: async (ctx) => {
    const samples = ctx.long ? LONG_SAMPLES : ctx.samples;
    // No owned devices of the shared workload: this one's single device is declared in a file of its own.
    const w = await prepareControllerWorkload(ctx, 0);
    // The state dir (the rollout memory) and the temporary files live outside the watched
    // directory, on the same filesystem, so the rename is atomic and the only event the agent sees.
    const side = await mkdtemp(join(tmpdir(), 'tkb-rollout-'));
    const file = join(w.dir, 'probed.yaml');
    try {
      await writeFile(file, declaration(MTUS[1]));
      const agent = await startAgent(ctx, w, ['--state-dir', join(side, 'state')]);
      try {
        // The first version is settled (its probes passed) before anything is measured.
        await followVersion(agent, 0);
        await waitIdle(agent, REST_MS);
        const kept: Sample[] = [];
        const retakes = Math.ceil(samples * RETAKE_SHARE);
        let retaken = 0;
        let busy = 0;
        let version = 0;
        while (kept.length < samples) {
          for (let attempt = 1; ; attempt++) {
            const mtu = MTUS[version++ % 2]!;
            const temp = join(side, `probed-${version}.yaml`);
            await waitIdle(agent, QUIET_MS);
            const load = snapshot([agent.proc.pid]);
            const t0 = Date.now();
            await writeFile(temp, declaration(mtu));
            await rename(temp, file);
            const t = await followVersion(agent, t0);
            const share = ctx.cpus.subject === null ? 0 : foreignShare(load, snapshot([agent.proc.pid]), ctx.cpus.subject, [agent.proc.pid]);
            const link = await w.rtnl.link({ ifname: IFNAME });
            if (link?.mtu !== mtu) throw new Error(`the probes passed with ${IFNAME} at MTU ${link?.mtu}, not the declared ${mtu}`);
            if (share > CONTENDED_SHARE && attempt < TRIES && retaken < retakes) {
              retaken++;
              continue;
            }
            if (share > CONTENDED_SHARE) busy++;
            kept.push({ ms: t.passed - t0, t0, t, share });
            break;
          }
        }
        if (retaken > 0) ctx.log(`  rollout-probe-ms: ${retaken} sample(s) taken again: others took more than ${CONTENDED_SHARE * 100}% of the agent's CPU`);
        if (busy > 0) ctx.log(`  rollout-probe-ms: WARNING ${busy} sample(s) kept although others took more than ${CONTENDED_SHARE * 100}% of the agent's CPU: those figures measure a busy machine`);
        const times = kept.map((k) => k.ms);
        const shares = kept.map((k) => k.share);
        const p99 = percentile(times, 99);
        ctx.log(
          `  rollout-probe-ms: ${samples} changes, median ${ms(median(times))}, p90 ${ms(percentile(times, 90))}, p99 ${ms(p99)}, max ${ms(Math.max(...times))}; ` +
            `others took ${(median(shares) * 100).toFixed(1)}% of the agent's CPU (median sample), at most ${(Math.max(...shares) * 100).toFixed(1)}%`,
        );
        const split = kept.flatMap((k) =>
          k.t.read !== undefined && k.t.applied !== undefined && k.t.passMs !== undefined
            ? [{ read: k.t.read - k.t0, applied: k.t.applied - k.t.read, pass: k.t.passMs, probe: k.t.passed - k.t.applied }]
            : [],
        );
        if (split.length > 0) {
          ctx.log(
            `  rollout-probe-ms: medians per phase (${split.length} samples with every line): declaration read ${ms(median(split.map((p) => p.read)))} after the change, ` +
              `change applied ${ms(median(split.map((p) => p.applied)))} later (the pass itself ${ms(median(split.map((p) => p.pass)))}), probes passed ${ms(median(split.map((p) => p.probe)))} after that`,
          );
        }
        const slowest = kept.reduce((a, b) => (b.ms > a.ms ? b : a));
        ctx.log(`  rollout-probe-ms: slowest ${ms(slowest.ms)}: ${phasesOf(slowest)}; others took ${(slowest.share * 100).toFixed(0)}% of the agent's CPU`);
        return { project: p99, reference: null, referenceName: null, projectSamples: times };
      } finally {
        await agent.stop();
      }
    } finally {
      await rm(side, { recursive: true, force: true });
      await w.close();
    }
  },
};
