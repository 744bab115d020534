/**
 * The reflector against a scripted HTTP API (no privileges): list then watch from the list's
 * resourceVersion with bookmarks; 410 Gone means list again (objects gone meanwhile are dropped);
 * a frozen watch is noticed by its idle timer; the copy survives a disconnection. The streaming
 * list (WatchList): initial events replace the copy at the end bookmark with one onChange; 410
 * re-syncs by stream; a server that rejects or ignores it gets a LIST, once and for good.
 * (The real API server is exercised by test/kube/agent.test.ts.)
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, PARTIAL_METADATA } from '../../../controller/kube/api-client.js';
import { INITIAL_EVENTS_END, Reflector, type ReflectorChange } from '../../../controller/kube/reflector.js';
import type { KubeObject } from '../../../controller/kube/types.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function fakeApi(handler: Handler): Promise<KubeApi> {
  server = createServer((req, res) => handler(req, res, new URL(req.url ?? '/', 'http://x')));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }, { name: 'nobody' });
  return new KubeApi(kc);
}

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, resourceVersion: rv } });
const json = (res: ServerResponse, body: unknown) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

/**
 * The fake server's answer to a plain watch (after a LIST): recorded in `requests` with its
 * resourceVersion, then a 410 Expired when `gone`, else held open.
 */
function answerWatch(res: ServerResponse, q: URLSearchParams, requests: string[], gone: boolean): void {
  requests.push(`watch rv=${q.get('resourceVersion')}`);
  res.writeHead(200, { 'content-type': 'application/json' });
  if (gone) return void res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' } })}\n`);
  res.write('\n');
}

async function until(check: () => boolean, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > 30_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Reflector', () => {
  it('lists, watches from the list version with bookmarks, and lists again on 410 Gone', async () => {
    const requests: string[] = [];
    let lists = 0;
    let watches = 0;
    const api = await fakeApi((_req, res, url) => {
      requests.push(`${url.searchParams.get('watch') ? 'watch' : 'list'} rv=${url.searchParams.get('resourceVersion') ?? ''} bookmarks=${url.searchParams.get('allowWatchBookmarks') ?? ''}`);
      if (!url.searchParams.get('watch')) {
        lists++;
        return json(res, lists === 1 ? { items: [obj('a', '9')], metadata: { resourceVersion: '10' } } : { items: [obj('b', '11'), obj('c', '19')], metadata: { resourceVersion: '20' } });
      }
      watches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (watches === 1) {
        res.write(`${JSON.stringify({ type: 'ADDED', object: obj('b', '11') })}\n`);
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } })}\n`);
        res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 12 (15)' } })}\n`);
        return;
      }
      // Stays open until the test ends.
      res.write('\n');
    });
    const changes: ReflectorChange[] = [];
    const restarts: string[] = [];
    const r = new Reflector<KubeObject>(
      { api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60, streamingList: false },
      { onChange: (_r, c) => changes.push(c), onRestart: (_res, reason) => restarts.push(reason) },
    );
    r.start();
    try {
      await until(() => watches >= 2, 'the second watch');
      expect(requests).toEqual(['list rv= bookmarks=', 'watch rv=10 bookmarks=true', 'list rv= bookmarks=', 'watch rv=20 bookmarks=true']);
      expect(restarts).toEqual(['gone']);
      // The relist dropped `a`, which was deleted while we were not watching.
      expect(r.objects().map((o) => o.metadata!.name).sort()).toEqual(['b', 'c']);
      expect(changes[0]).toBe('synced');
      expect(r.synced && r.connected).toBe(true);
    } finally {
      await r.stop();
    }
  });

  it('notices a frozen watch, keeps its copy while disconnected, and reconnects from where it was', async () => {
    let watches = 0;
    let lists = 0;
    let freeze = true;
    const watchVersions: string[] = [];
    const api = await fakeApi((_req, res, url) => {
      if (!url.searchParams.get('watch')) {
        lists++;
        return json(res, { items: [obj('a', '5')], metadata: { resourceVersion: '5' } });
      }
      watches++;
      watchVersions.push(url.searchParams.get('resourceVersion') ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      if (freeze) return res.flushHeaders(); // headers, then silence: a frozen stream
      res.write(`${JSON.stringify({ type: 'ADDED', object: obj('b', '6') })}\n`);
    });
    const changes: ReflectorChange[] = [];
    const restarts: string[] = [];
    const r = new Reflector<KubeObject>(
      { api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60, idleTimeoutMs: 300, backoff: { initialMs: 10, maxMs: 50 }, streamingList: false },
      { onChange: (_r, c) => changes.push(c), onRestart: (_res, reason) => restarts.push(reason) },
    );
    r.start();
    try {
      await until(() => changes.includes('disconnected'), 'the frozen watch to be noticed');
      expect(restarts[0]).toBe('timeout');
      expect(r.connected).toBe(false);
      expect(r.synced).toBe(true);
      expect(r.objects().map((o) => o.metadata!.name)).toEqual(['a']);
      freeze = false;
      await until(() => r.objects().length === 2, 'the watch to resume');
      expect(r.connected).toBe(true);
      // Resumed from the listed version: no second list was needed.
      expect(lists).toBe(1);
      expect(watchVersions.slice(0, 2)).toEqual(['5', '5']);
      expect(watches).toBeGreaterThan(1);
    } finally {
      await r.stop();
    }
  });

  it('keeps retrying a list that fails, with the error at hand', async () => {
    let lists = 0;
    const api = await fakeApi((_req, res) => {
      lists++;
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 503, reason: 'ServiceUnavailable', message: 'etcd is away' }));
    });
    const r = new Reflector<KubeObject>({ api, path: '/apis/x/v1/things', resource: 'things', backoff: { initialMs: 5, maxMs: 20 }, streamingList: false }, { onChange: () => undefined });
    r.start();
    try {
      await until(() => lists >= 3, 'three list attempts');
      expect(r.synced).toBe(false);
      expect(r.lastError).toContain('etcd is away');
    } finally {
      await r.stop();
    }
  });

  it('syncs by streaming list: the initial events replace the copy at the end bookmark, one onChange per sync; 410 re-syncs by stream', async () => {
    const requests: string[] = [];
    const accepts: string[] = [];
    let streams = 0;
    let goneAt = 0;
    let resyncAt = 0;
    const ev = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;
    const end = (rv: string) => ev('BOOKMARK', { kind: 'PartialObjectMetadata', metadata: { resourceVersion: rv, annotations: { [INITIAL_EVENTS_END]: 'true' } } });
    const api = await fakeApi((req, res, url) => {
      const q = url.searchParams;
      requests.push(q.get('watch') ? `watch sendInitialEvents=${q.get('sendInitialEvents') ?? ''} match=${q.get('resourceVersionMatch') ?? ''} rv=${q.get('resourceVersion') ?? ''} bookmarks=${q.get('allowWatchBookmarks') ?? ''}` : 'list');
      accepts.push(req.headers.accept ?? '');
      if (!q.get('watch') || q.get('sendInitialEvents') !== 'true') {
        res.writeHead(500);
        return res.end();
      }
      streams++;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (streams === 1) {
        // The state, the end, a change on the same watch, then 410 (a restarted watch cache).
        res.write(ev('ADDED', obj('a', '3')) + ev('ADDED', obj('b', '4')) + ev('ADDED', obj('c', '5')));
        res.write(end('10'));
        res.write(ev('MODIFIED', obj('b', '11')));
        goneAt = Date.now();
        res.end(ev('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 11 (40)' }));
        return;
      }
      resyncAt = Date.now();
      // a and c were deleted meanwhile, d created. The end bookmark comes a little later: nothing
      // of the new state may be seen before it.
      res.write(ev('ADDED', obj('b', '12')) + ev('ADDED', obj('d', '13')));
      setTimeout(() => res.write(end('20')), 200);
    });
    const changes: string[] = [];
    const restarts: string[] = [];
    const r = new Reflector<KubeObject>(
      { api, path: '/api/v1/nodes', resource: 'nodes', watchTimeoutSeconds: 60, metadataOnly: true, goneJitterMs: 400, random: () => 0.5 },
      {
        // What a consumer sees at each onChange: the change and the copy at that moment.
        onChange: (rr, c) => changes.push(`${c}:${rr.objects().map((o) => `${o.metadata!.name}@${o.metadata!.resourceVersion}`).sort().join(',')}`),
        onRestart: (_res, reason) => restarts.push(reason),
      },
    );
    r.start();
    try {
      await until(() => changes.length >= 3, 'the re-sync after 410');
      expect(changes).toEqual(['synced:a@3,b@4,c@5', 'changed:a@3,b@11,c@5', 'changed:b@12,d@13']);
      expect(restarts).toEqual(['gone']);
      // No LIST: both syncs were streams from the current state (no resourceVersion), with the
      // metadata-only Accept header.
      expect(requests).toEqual(Array(2).fill('watch sendInitialEvents=true match=NotOlderThan rv= bookmarks=true'));
      expect(accepts).toEqual([PARTIAL_METADATA.watch, PARTIAL_METADATA.watch]);
      expect(r.counts).toEqual({ lists: 0, streams: 2 });
      expect(r.synced && r.connected && r.streamingList).toBe(true);
      // The re-sync after 410 waited its jitter: 0.5 of goneJitterMs.
      expect(resyncAt - goneAt).toBeGreaterThanOrEqual(190);
    } finally {
      await r.stop();
    }
  });

  it('falls back to LIST when the server rejects the streaming list, and does not ask again', async () => {
    const requests: string[] = [];
    let lists = 0;
    let watches = 0;
    const api = await fakeApi((_req, res, url) => {
      const q = url.searchParams;
      if (q.get('sendInitialEvents')) {
        requests.push('stream');
        // What kube-apiserver 1.36 answers with --feature-gates=WatchList=false.
        res.writeHead(422, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 422, reason: 'Invalid', message: 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled' }));
        return;
      }
      if (!q.get('watch')) {
        lists++;
        requests.push('list');
        return json(res, lists === 1 ? { items: [obj('a', '9')], metadata: { resourceVersion: '10' } } : { items: [obj('b', '11')], metadata: { resourceVersion: '20' } });
      }
      watches++;
      answerWatch(res, q, requests, watches === 1);
    });
    const changes: ReflectorChange[] = [];
    const r = new Reflector<KubeObject>({ api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60, random: () => 0 }, { onChange: (_r, c) => changes.push(c) });
    r.start();
    try {
      await until(() => watches >= 2, 'the watch after the second list');
      expect(requests).toEqual(['stream', 'list', 'watch rv=10', 'list', 'watch rv=20']);
      expect(r.streamingList).toBe(false);
      expect(r.counts).toEqual({ lists: 2, streams: 1 });
      expect(changes).toEqual(['synced', 'changed']);
      expect(r.objects().map((o) => o.metadata!.name)).toEqual(['b']);
    } finally {
      await r.stop();
    }
  });

  it('falls back to LIST when the initial events never end (a server that ignores sendInitialEvents), and gives up on streams after two', async () => {
    const requests: string[] = [];
    let lists = 0;
    let watches = 0;
    const api = await fakeApi((_req, res, url) => {
      const q = url.searchParams;
      if (q.get('sendInitialEvents')) {
        requests.push('stream');
        // An old server: a watch from "now" with the state as ADDED events, and no end bookmark.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ADDED', object: obj('stale', '1') })}\n`);
        return;
      }
      if (!q.get('watch')) {
        lists++;
        requests.push('list');
        return json(res, { items: [obj(`l${lists}`, '9')], metadata: { resourceVersion: String(10 * lists) } });
      }
      watches++;
      answerWatch(res, q, requests, watches <= 2);
    });
    const changes: ReflectorChange[] = [];
    const r = new Reflector<KubeObject>({ api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60, initialEventsTimeoutMs: 300, random: () => 0 }, { onChange: (_r, c) => changes.push(c) });
    r.start();
    try {
      await until(() => watches >= 3, 'the third watch');
      // The stream that never ended left no trace in the copy; the second such stream was the last.
      expect(requests).toEqual(['stream', 'list', 'watch rv=10', 'stream', 'list', 'watch rv=20', 'list', 'watch rv=30']);
      expect(r.streamingList).toBe(false);
      expect(changes).toEqual(['synced', 'changed', 'changed']);
      expect(r.objects().map((o) => o.metadata!.name)).toEqual(['l3']);
    } finally {
      await r.stop();
    }
  });

  it('takes a plain bookmark before the end bookmark as a server that ignores sendInitialEvents', async () => {
    const requests: string[] = [];
    const api = await fakeApi((_req, res, url) => {
      const q = url.searchParams;
      if (q.get('sendInitialEvents')) {
        requests.push('stream');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ADDED', object: obj('stale', '1') })}\n${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '7' } } })}\n`);
        return;
      }
      requests.push(q.get('watch') ? `watch rv=${q.get('resourceVersion')}` : 'list');
      if (!q.get('watch')) return json(res, { items: [obj('x', '9')], metadata: { resourceVersion: '10' } });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('\n');
    });
    const r = new Reflector<KubeObject>({ api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60 }, { onChange: () => undefined });
    r.start();
    try {
      await until(() => requests.length >= 3, 'the watch after the list');
      expect(requests).toEqual(['stream', 'list', 'watch rv=10']);
      expect(r.streamingList).toBe(false);
      expect(r.objects().map((o) => o.metadata!.name)).toEqual(['x']);
    } finally {
      await r.stop();
    }
  });

  it('retries a stream cut before its end bookmark (a server going away) by stream, after the backoff, not by LIST', async () => {
    let streams = 0;
    let lists = 0;
    const api = await fakeApi((_req, res, url) => {
      if (!url.searchParams.get('sendInitialEvents')) {
        lists++;
        res.writeHead(500);
        return res.end();
      }
      streams++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: obj('a', '1') })}\n`);
      if (streams === 1) return res.end();
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '2', annotations: { [INITIAL_EVENTS_END]: 'true' } } } })}\n`);
    });
    const changes: ReflectorChange[] = [];
    const restarts: string[] = [];
    const r = new Reflector<KubeObject>(
      { api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60, backoff: { initialMs: 5, maxMs: 20 } },
      { onChange: (_r, c) => changes.push(c), onRestart: (_res, reason) => restarts.push(reason) },
    );
    r.start();
    try {
      await until(() => r.synced, 'the sync');
      expect(streams).toBe(2);
      expect(lists).toBe(0);
      expect(restarts).toEqual(['error']);
      expect(changes).toEqual(['synced']);
      expect(r.streamingList).toBe(true);
    } finally {
      await r.stop();
    }
  });
});
