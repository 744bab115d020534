/** Events: one object per new occurrence, repeats counted in its series, a token bucket per device and reason. */
import { describe, expect, it } from '@jest/globals';
import type { KubeApi, RequestSpec } from '../../../controller/kube/api-client.js';
import { EventRecorder, type EventResult } from '../../../controller/kube/events.js';
import { createLogger } from '../../../controller/telemetry/logger.js';

function recorder(opts: { burst?: number; refillMs?: number; seriesWindowMs?: number } = {}) {
  const calls: RequestSpec[] = [];
  const results: EventResult[] = [];
  let now = 1_700_000_000_000;
  const api = { request: async (spec: RequestSpec) => (calls.push(spec), {}) } as unknown as KubeApi;
  const r = new EventRecorder({ api, nodeName: 'n1', nodeUid: () => 'uid-n1', logger: createLogger('silent'), now: () => now, onResult: (x) => results.push(x), ...opts });
  return { r, calls, results, advance: (ms: number) => (now += ms) };
}

const refused = { device: 'host', type: 'Warning' as const, reason: 'Refused', action: 'Reconcile', note: 'interface name "eth7" is not allowed' };

describe('EventRecorder', () => {
  it('creates an events.k8s.io/v1 Event in default about the TunDevice', async () => {
    const { r, calls } = recorder();
    r.record(refused);
    await r.flush();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ method: 'POST', path: '/apis/events.k8s.io/v1/namespaces/default/events' });
    const body = calls[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'default' },
      reportingController: 'tunkeeper.io/agent',
      reportingInstance: 'n1',
      reason: 'Refused',
      type: 'Warning',
      action: 'Reconcile',
      note: refused.note,
      regarding: { apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice', name: 'host' },
      related: { apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'uid-n1' },
    });
    expect(body.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect((body.metadata as { name: string }).name).toMatch(/^host\.[0-9a-f]+$/);
  });

  it('counts a repeat in the first Event\'s series instead of creating another', async () => {
    const { r, calls, results, advance } = recorder();
    r.record(refused);
    advance(1000);
    r.record(refused);
    advance(1000);
    r.record(refused);
    await r.flush();
    expect(calls.map((c) => c.method)).toEqual(['POST', 'PATCH', 'PATCH']);
    const name = ((calls[0]!.body as { metadata: { name: string } }).metadata.name);
    expect(calls[1]).toMatchObject({ path: `/apis/events.k8s.io/v1/namespaces/default/events/${name}`, contentType: 'application/merge-patch+json' });
    expect((calls[2]!.body as { series: { count: number } }).series.count).toBe(3);
    expect(results).toEqual(['created', 'series', 'series']);
  });

  it('a new note, or a repeat after the series window, is a new Event', async () => {
    const { r, calls, advance } = recorder({ seriesWindowMs: 10_000 });
    r.record(refused);
    r.record({ ...refused, note: 'another reason' });
    advance(60_000);
    r.record({ ...refused, note: 'another reason' });
    await r.flush();
    expect(calls.map((c) => c.method)).toEqual(['POST', 'POST', 'POST']);
  });

  it('rate limits per device and reason, and the next allowed one carries the suppressed count', async () => {
    const { r, calls, results, advance } = recorder({ burst: 2, refillMs: 60_000 });
    for (let i = 0; i < 5; i++) r.record(refused);
    // Another device and another reason have buckets of their own.
    r.record({ ...refused, device: 'other' });
    r.record({ ...refused, reason: 'Conflict' });
    await r.flush();
    expect(results.filter((x) => x === 'rate-limited')).toHaveLength(3);
    expect(calls).toHaveLength(4);
    advance(60_000);
    r.record(refused);
    await r.flush();
    // 2 sent + 3 suppressed + this one.
    expect((calls[4]!.body as { series: { count: number } }).series.count).toBe(6);
  });

  it('sends nothing after close', async () => {
    const { r, calls } = recorder();
    await r.close();
    r.record(refused);
    await r.flush();
    expect(calls).toEqual([]);
  });
});
