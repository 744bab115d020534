/**
 * Probes from the command line, in a namespace of its own: `apply` runs them and says in its exit
 * code whether they passed, `plan` shows what they answer now, and `run -f` (standalone) keeps the
 * last good version in its state dir and puts it back when a change fails a probe, the same as a
 * node in a cluster. The failure is real: a foreign more-specific route shadows the declared one.
 */
import { expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess, eventually, runCli } from '../helpers/cli.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';

const declaration = (mtu: number) => `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: probed
spec:
  ifname: tk-probed0
  mtu: ${mtu}
  addresses: [192.0.2.1/24]
  routes:
    - to: 198.51.100.0/24
  probes:
    - route: {to: 198.51.100.7}
  rollout:
    probeTimeoutSeconds: 2
`;

const mtuOf = async (ns: Netns): Promise<number> => (await ns.ipJson<Array<{ mtu: number }>>('link', 'show', 'dev', 'tk-probed0'))[0]!.mtu;

/** A foreign /25 on another link, more specific than the declared /24: lookups for .7 leave through it. */
async function shadow(ns: Netns): Promise<void> {
  await ns.ip('link', 'add', 'tk-shadow0', 'type', 'veth', 'peer', 'name', 'tk-shadow1');
  await ns.ip('link', 'set', 'tk-shadow0', 'up');
  await ns.ip('link', 'set', 'tk-shadow1', 'up');
  await ns.ip('route', 'add', '198.51.100.0/25', 'dev', 'tk-shadow0', 'proto', 'static');
}

function messages(p: CliProcess): string[] {
  return p.lines().flatMap((l) => {
    try {
      const m = (JSON.parse(l) as { msg?: unknown }).msg;
      return typeof m === 'string' ? [m] : [];
    } catch {
      return [];
    }
  });
}

describeKernel('probes from the command line', () => {
  it('apply exits 0 when the probes pass and 3 when one fails; plan shows what they answer now', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-probes-'));
    try {
      const file = join(dir, 'probed.yaml');
      await writeFile(file, declaration(1400));
      await withNetns(async (ns) => {
        const ok = await runCli(['apply', '-f', file, '--netns', ns.name]);
        expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
        expect(ok.stdout).toMatch(/tk-probed0: probe route 198\.51\.100\.7 passed: 198\.51\.100\.7 → dev tk-probed0 via its route 198\.51\.100\.0\/24/);

        await shadow(ns);
        const failed = await runCli(['apply', '-f', file, '--netns', ns.name]);
        expect(failed.code).toBe(3);
        expect(failed.stdout).toMatch(/tk-probed0: probe route 198\.51\.100\.7 FAILED \(\d+ attempts\): 198\.51\.100\.7 → dev tk-shadow0 via a foreign route 198\.51\.100\.0\/25 proto static/);
        expect(failed.stdout).toContain('apply keeps no last good version to roll back to');

        const plan = await runCli(['plan', '-f', file, '--netns', ns.name]);
        expect(plan.code).toBe(0);
        expect(plan.stdout).toContain('probes, as the kernel answers now:');
        expect(plan.stdout).toMatch(/ {2}tk-probed0: probe route 198\.51\.100\.7 FAILED: 198\.51\.100\.7 → dev tk-shadow0/);
        const json = JSON.parse((await runCli(['plan', '-f', file, '--netns', ns.name, '--json'])).stdout) as { probes: unknown[] };
        expect(json.probes).toEqual([expect.objectContaining({ device: 'probed', ifname: 'tk-probed0', probe: 'route 198.51.100.7', passed: false })]);
      }, 'probes');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('run -f rolls a change that fails its probe back to the last good version, remembered in its state dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-probes-'));
    try {
      const file = join(dir, 'probed.yaml');
      const state = join(dir, 'state');
      await writeFile(file, declaration(1400));
      await withNetns(async (ns) => {
        const args = ['run', '-f', file, '--netns', ns.name, '--metrics-address', 'off', '--state-dir', state];
        let p = new CliProcess(args);
        try {
          await eventually(p, 'the first version to pass its probe', async () => messages(p).find((m) => m.includes('every probe passed')));
          expect(await mtuOf(ns)).toBe(1400);

          await shadow(ns);
          await writeFile(file, declaration(1380));
          const said = await eventually(p, 'the rollback', async () => messages(p).find((m) => m.includes('the last good version is back in force')));
          expect(said).toMatch(/tk-probed0: probe route 198\.51\.100\.7 failed \(198\.51\.100\.7 → dev tk-shadow0 via a foreign route 198\.51\.100\.0\/25 proto static\)/);
          await eventually(p, 'the good MTU back', async () => ((await mtuOf(ns)) === 1400 ? true : undefined));
          p.kill('SIGTERM');
          expect((await p.exited).code).toBe(0);

          // A restart remembers the rejection: the failed version is not applied again.
          p = new CliProcess([...args, '--log-level', 'debug']);
          // A pass that has ended (its log line carries the outcome), not one that has started:
          // mid-pass the MTU would read 1400 even if that pass were about to set 1380.
          await eventually(p, 'a first pass to end', async () => p.lines().find((l) => /"outcome":"(converged|failed)"/.test(l)));
          expect(await mtuOf(ns)).toBe(1400);
          expect(messages(p).some((m) => m.includes('every probe passed') || m.includes('failed ('))).toBe(false);
        } finally {
          if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL');
          await p.exited.catch(() => undefined);
        }
      }, 'probes');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
