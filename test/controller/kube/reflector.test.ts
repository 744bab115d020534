/**
 * The reflector against a scripted HTTP API (no privileges): list then watch from the list's
 * resourceVersion with bookmarks; 410 Gone means list again (objects gone meanwhile are dropped);
 * a frozen watch is noticed by its idle timer; the copy survives a disconnection.
 * (The real API server is exercised by test/kube/agent.test.ts.)
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../../../controller/kube/api-client.js';
import { Reflector, type ReflectorChange } from '../../../controller/kube/reflector.js';
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
      { api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60 },
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
      { api, path: '/apis/x/v1/things', resource: 'things', watchTimeoutSeconds: 60, idleTimeoutMs: 300, backoff: { initialMs: 10, maxMs: 50 } },
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
    const r = new Reflector<KubeObject>({ api, path: '/apis/x/v1/things', resource: 'things', backoff: { initialMs: 5, maxMs: 20 } }, { onChange: () => undefined });
    r.start();
    try {
      await until(() => lists >= 3, 'three list attempts');
      expect(r.synced).toBe(false);
      expect(r.lastError).toContain('etcd is away');
    } finally {
      await r.stop();
    }
  });
});
