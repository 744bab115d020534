/** Metrics and probes over real HTTP on 127.0.0.1:0. */
import { describe, expect, it } from '@jest/globals';
import { httpRequest as get } from '../../helpers/http.js';
import { startHttpServer, type Probe } from '../../../controller/telemetry/http.js';
import { AgentMetrics, METRIC_NAMES } from '../../../controller/telemetry/metrics.js';
import type { Action } from '../../../controller/plan/actions.js';
import type { ReconcileResult } from '../../../controller/reconcile/types.js';


const failedResult: ReconcileResult = {
  outcome: 'failed',
  plan: null,
  applied: 2,
  failures: [{ action: { type: 'add-address', device: 'edge' } as unknown as Action, device: 'edge', code: 'EADDRNOTAVAIL', message: 'no' }],
  devices: [
    { device: 'edge', ifname: 'tk-edge0', status: 'degraded', findings: [], failures: [] },
    { device: 'p2p', ifname: 'tk-p2p0', status: 'ready', findings: [], failures: [] },
  ],
  repairs: { mtu: 1, route: 2 },
};

describe('metrics over HTTP', () => {
  it('serves every metric on /metrics, probes on /healthz and /readyz, and refuses writes', async () => {
    const metrics = new AgentMetrics();
    const obs = metrics.loopObserver();
    obs.wake!('netlink-event');
    obs.wake!('resync-needed');
    obs.passStarted!({ desired: [], prune: true }, ['netlink-event']);
    const during = await metrics.text();
    obs.passFinished!({ input: { desired: [], prune: true }, reasons: ['netlink-event'], startedAt: 0, durationMs: 12, result: failedResult });
    obs.retryScheduled!('edge', 1, 1000);
    obs.fight!('edge', 2, 1000);
    let ready: Probe = { ok: false, detail: 'waiting for a complete first sync of: files' };
    const http = await startHttpServer(
      { host: '127.0.0.1', port: 0 },
      {
        metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.text() }),
        healthz: () => ({ ok: true, detail: 'alive' }),
        readyz: () => ready,
      },
    );
    try {
      expect(http.address.port).toBeGreaterThan(0);
      const m = await get(`${http.url}/metrics`);
      expect(m.status).toBe(200);
      expect(m.type).toMatch(/^text\/plain/);
      for (const name of Object.values(METRIC_NAMES)) expect(m.body).toContain(`# TYPE ${name} `);
      expect(m.body).toContain('tunkeeper_reconciles_total{result="failed"} 1');
      expect(m.body).toContain('tunkeeper_reconciles_total{result="converged"} 0');
      expect(m.body).toContain('tunkeeper_reconcile_duration_seconds_count 1');
      expect(m.body).toContain('tunkeeper_wakeups_total{reason="netlink-event"} 1');
      expect(m.body).toContain('tunkeeper_wakeups_total{reason="periodic"} 0');
      expect(m.body).toContain('tunkeeper_resync_needed_total 1');
      expect(m.body).toContain('tunkeeper_drift_repairs_total{kind="route"} 2');
      expect(m.body).toContain('tunkeeper_apply_errors_total{operation="add-address",errno="EADDRNOTAVAIL"} 1');
      expect(m.body).toContain('tunkeeper_managed_devices{status="degraded"} 1');
      expect(m.body).toContain('tunkeeper_managed_devices{status="ready"} 1');
      expect(m.body).toContain('tunkeeper_device_fights_total{device="edge"} 1');
      expect(m.body).toContain('process_resident_memory_bytes');
      expect(during).toContain('tunkeeper_reconcile_running 1');
      expect(m.body).toContain('tunkeeper_reconcile_running 0');

      expect(await get(`${http.url}/healthz`)).toMatchObject({ status: 200, body: 'ok: alive\n' });
      expect(await get(`${http.url}/readyz`)).toMatchObject({ status: 503, body: 'not ok: waiting for a complete first sync of: files\n' });
      ready = { ok: true, detail: 'last reconcile converged' };
      expect(await get(`${http.url}/readyz`)).toMatchObject({ status: 200 });
      expect(await get(`${http.url}/metrics`, 'POST')).toMatchObject({ status: 405 });
      expect(await get(`${http.url}/readyz`, 'DELETE')).toMatchObject({ status: 405 });
      expect(await get(`${http.url}/reconcile`)).toMatchObject({ status: 404 });
      expect(await get(`${http.url}/healthz`, 'HEAD')).toMatchObject({ status: 200, body: '' });
    } finally {
      await http.close();
    }
  });

  it('keeps each agent in its own registry', async () => {
    const a = new AgentMetrics({ processMetrics: false });
    const b = new AgentMetrics({ processMetrics: false });
    a.wake('periodic');
    expect(await a.text()).toContain('tunkeeper_wakeups_total{reason="periodic"} 1');
    expect(await b.text()).toContain('tunkeeper_wakeups_total{reason="periodic"} 0');
    expect(await b.text()).not.toContain('process_resident_memory_bytes');
  });
});
