/**
 * The GitOps health clients the Kubernetes tier judges a TunDevice with are the real ones: Flux's
 * kstatus library and Argo CD's way of running a health.lua. Hand-built objects, no API server:
 * each case pins an outcome that only the real code gives (kstatus's own messages, Argo CD's
 * 1-based arrays, its missing string library, its answer to an invalid status).
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argoHealthOf, kstatusOf } from '../helpers/gitops-clients.js';
import { describeKube } from '../helpers/kube-cluster.js';

type Condition = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string };

const cond = (type: string, status: Condition['status'], message = `${type} is ${status}`): Condition => ({ type, status, reason: `${type}${status}`, message });

function tunDevice(generation: number, observedGeneration: number, conditions: Condition[] = []) {
  return {
    apiVersion: 'tunkeeper.io/v1alpha1',
    kind: 'TunDevice',
    metadata: { name: 'tk-test', generation, uid: '7e1f3f7c-0000-4000-8000-000000000001' },
    spec: { ifname: 'tk-test', mode: 'tun' },
    status: { observedGeneration, conditions },
  };
}

describeKube('GitOps health clients: kstatus (Flux)', () => {
  it('generation 2 not yet observed (observedGeneration 1) is InProgress, in kstatus words', async () => {
    expect(await kstatusOf(tunDevice(2, 1))).toEqual({
      status: 'InProgress',
      message: 'TunDevice generation is 2, but latest observed generation is 1',
    });
  });

  it('generation observed but Reconciling True is InProgress, with the condition message', async () => {
    const obj = tunDevice(2, 2, [cond('Reconciling', 'True', 'applying 2 addresses'), cond('Ready', 'False', 'not yet')]);
    expect(await kstatusOf(obj)).toEqual({ status: 'InProgress', message: 'applying 2 addresses' });
  });

  it('Stalled True (Reconciling False) is Failed, with the Stalled message', async () => {
    const obj = tunDevice(2, 2, [cond('Reconciling', 'False'), cond('Stalled', 'True', 'address 10.0.0.1/24 refused: EADDRNOTAVAIL'), cond('Ready', 'False')]);
    expect(await kstatusOf(obj)).toEqual({ status: 'Failed', message: 'address 10.0.0.1/24 refused: EADDRNOTAVAIL' });
  });

  it('Ready True, Reconciling False, Stalled False is Current ("Resource is Ready": the Ready condition was read)', async () => {
    const obj = tunDevice(2, 2, [cond('Ready', 'True'), cond('Reconciling', 'False'), cond('Stalled', 'False')]);
    expect(await kstatusOf(obj)).toEqual({ status: 'Current', message: 'Resource is Ready' });
  });

  it('Ready False alone is InProgress, and no conditions at all is Current "Resource is current"', async () => {
    expect(await kstatusOf(tunDevice(3, 3, [cond('Ready', 'False', 'device missing')]))).toEqual({ status: 'InProgress', message: 'device missing' });
    expect(await kstatusOf(tunDevice(3, 3))).toEqual({ status: 'Current', message: 'Resource is current' });
  });

  it('a deletionTimestamp is Terminating', async () => {
    const obj = tunDevice(2, 2, [cond('Ready', 'True')]);
    const deleting = { ...obj, metadata: { ...obj.metadata, deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['tunkeeper.io/cleanup'] } };
    expect(await kstatusOf(deleting)).toEqual({ status: 'Terminating', message: 'Resource scheduled for deletion' });
  });

  it('bad input is rejected with the reason: a generation that is not an integer, an object without kind', async () => {
    const obj = tunDevice(2, 2);
    await expect(kstatusOf({ ...obj, metadata: { ...obj.metadata, generation: 'two' } })).rejects.toThrow(/metadata\.generation.*expected int64/);
    await expect(kstatusOf({ apiVersion: 'v1', metadata: { name: 'x' } })).rejects.toThrow(/Kind.*missing/i);
  });
});

describeKube('GitOps health clients: Argo CD health.lua (gopher-lua)', () => {
  let dir: string;
  const script = (name: string, text: string): string => {
    const p = join(dir, `${name}.lua`);
    writeFileSync(p, text);
    return p;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tunkeeper-argo-lua-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const HEALTH = `
local hs = {}
if obj.status == nil or obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for generation " .. obj.metadata.generation
  return hs
end
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Stalled" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = c.message
      return hs
    end
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" and c.status == "True" then
      hs.status = "Healthy"
      hs.message = c.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "not Ready yet"
return hs
`;

  it('a health script sees obj and its verdict comes back: Healthy, Progressing, Degraded', async () => {
    const path = script('health', HEALTH);
    expect(await argoHealthOf(tunDevice(2, 2, [cond('Ready', 'True', 'device up')]), path)).toEqual({ status: 'Healthy', message: 'device up' });
    // Integers arrive as Lua numbers: compared with ~= and concatenated without a ".0".
    expect(await argoHealthOf(tunDevice(2, 1), path)).toEqual({ status: 'Progressing', message: 'waiting for generation 2' });
    expect(await argoHealthOf(tunDevice(2, 2, [cond('Ready', 'False')]), path)).toEqual({ status: 'Progressing', message: 'not Ready yet' });
    expect(await argoHealthOf(tunDevice(2, 2, [cond('Ready', 'True'), cond('Stalled', 'True', 'MTU 9000 refused')]), path)).toEqual({ status: 'Degraded', message: 'MTU 9000 refused' });
  });

  it('arrays are 1-based Lua tables: conditions[1] is the first, conditions[0] is nil, # is the length', async () => {
    const path = script('array', `return { status = "Healthy", message = obj.status.conditions[1].type .. "," .. tostring(obj.status.conditions[0]) .. "," .. #obj.status.conditions }`);
    expect(await argoHealthOf(tunDevice(1, 1, [cond('Ready', 'True'), cond('Stalled', 'False')]), path)).toEqual({ status: 'Healthy', message: 'Ready,nil,2' });
  });

  it('an invalid status is what Argo CD makes of it: Unknown "Lua returned an invalid health status" (not an error)', async () => {
    const path = script('invalid', `return { status = "Fine", message = "all good" }`);
    expect(await argoHealthOf(tunDevice(1, 1), path)).toEqual({ status: 'Unknown', message: 'Lua returned an invalid health status' });
  });

  it('a result that is not a table is an error, in Argo CD words', async () => {
    const path = script('number', `return 1`);
    await expect(argoHealthOf(tunDevice(1, 1), path)).rejects.toThrow(/^expect table output from Lua script, not number$/);
  });

  it('a syntax error is an error naming the place', async () => {
    const path = script('syntax', `local hs = {\nhs.status = "Healthy"\nreturn hs`);
    await expect(argoHealthOf(tunDevice(1, 1), path)).rejects.toThrow(/^<string> line:2\(column:\d+\) near '.+':\s+syntax error/);
  });

  it('without useOpenLibs the string library is absent (runtime error, no stack trace); with it, present', async () => {
    const path = script('string', `return { status = "Healthy", message = string.upper(obj.kind) }`);
    await expect(argoHealthOf(tunDevice(1, 1), path)).rejects.toThrow(/^<string>:1: attempt to index a non-table object\(nil\) with key 'upper'$/);
    expect(await argoHealthOf(tunDevice(1, 1), path, { openLibs: true })).toEqual({ status: 'Healthy', message: 'TUNDEVICE' });
  });

  it('a script that never ends is stopped at Argo CD\'s 1 s limit', async () => {
    const path = script('loop', `while true do end`);
    const started = Date.now();
    await expect(argoHealthOf(tunDevice(1, 1), path)).rejects.toThrow(/context deadline exceeded/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});
