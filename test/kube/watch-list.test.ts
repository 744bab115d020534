/**
 * The reflector's streaming list (WatchList) against the real kube-apiserver: the first sync and
 * the re-sync after the API server restarts (its new watch cache answers the old version with
 * 410) are streams, not LISTs — by the reflector's own counters and by the new server's
 * apiserver_request_total — and the copy after the restart is the cluster's: objects changed just
 * before the stop and just after the start are all there, deleted ones gone. Metadata-only (Nodes,
 * by field selector, as the cluster source watches its own) works the same. With the WatchList
 * feature gate off the server's rejection sends the reflector to LIST, once.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { parseMetrics } from '../../bench/fleet/apiserver-metrics.js';
import { KubeApi, KubeApiError } from '../../controller/kube/api-client.js';
import { Reflector } from '../../controller/kube/reflector.js';
import { NODES_PATH, TUN_DEVICES_PATH, type KubeObject } from '../../controller/kube/types.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { pollUntil } from '../helpers/poll.js';

const NODE = 'wl-node';

/** The server's own counters: LISTs and completed streaming lists of one resource. */
async function serverCounts(cluster: KubeCluster, resource: string): Promise<{ lists: number; streams: number }> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      `${cluster.server}/metrics`,
      { ca: readFileSync(join(cluster.dir, 'ca.crt')), cert: readFileSync(join(cluster.dir, 'admin.crt')), key: readFileSync(join(cluster.dir, 'admin.key')), timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`GET /metrics: ${res.statusCode}`))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('GET /metrics: timed out')));
    req.end();
  });
  let lists = 0;
  let streams = 0;
  for (const s of parseMetrics(text, new Set(['apiserver_request_total', 'apiserver_watch_list_duration_seconds_count']))) {
    if (s.labels.resource !== resource) continue;
    if (s.name === 'apiserver_request_total' && s.labels.verb === 'LIST') lists += s.value;
    if (s.name === 'apiserver_watch_list_duration_seconds_count') streams += s.value;
  }
  return { lists, streams };
}

const names = (r: Reflector<KubeObject>) => r.objects().map((o) => o.metadata?.name ?? '').sort();

describeKube('reflector: streaming list (WatchList) against the real API server', () => {
  let cluster: KubeCluster;
  let api: KubeApi;

  beforeAll(async () => {
    cluster = await startKubeCluster();
    api = new KubeApi(cluster.kubeConfig());
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
  }, 60_000);

  const createDevice = (name: string) => api.request({ method: 'POST', path: TUN_DEVICES_PATH, body: { apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice', metadata: { name }, spec: { ifname: `tk-${name}` } } });
  const deleteDevice = (name: string) => api.request({ method: 'DELETE', path: `${TUN_DEVICES_PATH}/${name}` });
  const labelNode = (key: string) => api.request({ method: 'PATCH', path: `${NODES_PATH}/${NODE}`, contentType: 'application/merge-patch+json', body: { metadata: { labels: { [key]: 'yes' } } } });

  it('syncs by stream, and re-syncs by stream after the API server restarts: no LIST, the copy is the cluster', async () => {
    await cluster.createNode(NODE);
    await cluster.createNode('wl-other');
    for (const n of ['wl1', 'wl2']) await createDevice(n);
    const opts = { api, watchTimeoutSeconds: 60, backoff: { initialMs: 200, maxMs: 2_000, jitter: 0.5 } };
    // The first POST made the API server build the tundevices watch cache; a stream opened before
    // that cache is ready is answered 429 "storage is (re)initializing" and opened again. Such a
    // retry is the server's doing, not a re-sync: each extra stream of the first sync must be one.
    const retried = { tundevices: [] as Array<KubeApiError | undefined>, node: [] as Array<KubeApiError | undefined> };
    const observer = (key: keyof typeof retried) => ({ onChange: () => undefined, onRestart: (_r: string, _reason: string, err?: KubeApiError) => void retried[key].push(err) });
    const devices = new Reflector<KubeObject>({ ...opts, path: TUN_DEVICES_PATH, resource: 'tundevices' }, observer('tundevices'));
    const node = new Reflector<KubeObject>({ ...opts, path: NODES_PATH, resource: 'node', fieldSelector: `metadata.name=${NODE}`, metadataOnly: true }, observer('node'));
    devices.start();
    node.start();
    try {
      await pollUntil('the first syncs', async () => devices.synced && node.synced && names(devices).join() === 'wl1,wl2');
      expect(names(node)).toEqual([NODE]);
      // Metadata only: no spec or status came.
      expect(Object.keys(node.objects()[0]!).filter((k) => k === 'spec' || k === 'status')).toEqual([]);
      for (const [r, key] of [[devices, 'tundevices'], [node, 'node']] as const) {
        expect(retried[key].filter((e) => e?.statusCode !== 429).map((e) => e?.message ?? 'a restart without an error')).toEqual([]);
        expect(r.counts).toEqual({ lists: 0, streams: 1 + retried[key].length });
      }

      // Changes just before the stop (the watch may or may not bring them before it dies)...
      await deleteDevice('wl1');
      await createDevice('wl3');
      await labelNode('before');
      await cluster.stopApiServer();
      await pollUntil('both reflectors to see the API server go', async () => !devices.connected && !node.connected);
      await cluster.startApiServer();
      // ...and just after the start, perhaps before the reflectors are back.
      await deleteDevice('wl2');
      await createDevice('wl4');
      await labelNode('after');

      await pollUntil('the copies after the restart', async () => devices.connected && node.connected && names(devices).join() === 'wl3,wl4' && Object.keys(node.objects()[0]?.metadata?.labels ?? {}).includes('after'));
      expect(Object.keys(node.objects()[0]!.metadata!.labels!)).toEqual(expect.arrayContaining(['before', 'after']));
      expect(names(node)).toEqual([NODE]);
      // Re-synced by stream: no LIST, by the reflectors' counters and by the new server's.
      expect(devices.counts.lists).toBe(0);
      expect(node.counts.lists).toBe(0);
      expect(devices.counts.streams).toBeGreaterThanOrEqual(2);
      expect(devices.streamingList && node.streamingList).toBe(true);
      const served = await serverCounts(cluster, 'tundevices');
      expect(served.lists).toBe(0);
      expect(served.streams).toBeGreaterThanOrEqual(1);
    } finally {
      await devices.stop();
      await node.stop();
    }
  }, 240_000);
});

describeKube('reflector: streaming list with the WatchList feature gate off', () => {
  let cluster: KubeCluster;

  beforeAll(async () => {
    cluster = await startKubeCluster({ crds: false, apiServerArgs: ['--feature-gates=WatchList=false'] });
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
  }, 60_000);

  it('is refused by the server, and the reflector lists instead, without asking again', async () => {
    await cluster.createNode('wl-off');
    const errors: string[] = [];
    const r = new Reflector<KubeObject>(
      { api: new KubeApi(cluster.kubeConfig()), path: NODES_PATH, resource: 'nodes', metadataOnly: true, watchTimeoutSeconds: 60 },
      { onChange: () => undefined, onRestart: (_res, _reason, err) => errors.push(err?.message ?? '') },
    );
    r.start();
    try {
      await pollUntil('the sync', async () => r.synced && r.connected);
      expect(names(r)).toEqual(['wl-off']);
      expect(r.streamingList).toBe(false);
      expect(r.counts).toEqual({ lists: 1, streams: 1 });
      // The refusal is no failure of the reflector's: nothing was restarted.
      expect(errors).toEqual([]);
    } finally {
      await r.stop();
    }
  }, 120_000);
});
