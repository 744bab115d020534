/**
 * The API client's lifetime handling, against a local HTTP server: an abort is never lost, and a
 * request leaves nothing behind on the agent's lifetime signal.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { getEventListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, KubeApiError } from '../../../controller/kube/api-client.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function fakeApi(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<KubeApi> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }, { name: 'nobody' });
  return new KubeApi(kc);
}

// Far beyond jest's hang guard: a test that waits for one of these has lost its abort.
const NEVER_MS = 24 * 3600_000;

describe('KubeApi', () => {
  it('ends a watch aborted while its request is still being prepared, without waiting for the idle timeout', async () => {
    const api = await fakeApi(() => undefined); // a black hole: accepts, never answers
    const watch = api.watch('/api/v1/nodes', {}, { onEvent: () => undefined }, NEVER_MS);
    watch.abort(); // before the request exists: the client is still reading its kubeconfig
    await expect(watch.done).resolves.toBeUndefined();
  });

  it('ends a watch aborted while the server has not answered yet', async () => {
    let arrived: () => void = () => undefined;
    const requested = new Promise<void>((r) => (arrived = r));
    const api = await fakeApi(() => arrived());
    const watch = api.watch('/api/v1/nodes', {}, { onEvent: () => undefined }, NEVER_MS);
    await requested;
    watch.abort();
    await expect(watch.done).resolves.toBeUndefined();
  });

  it('takes its listener off the caller signal when a request ends, answered or failed', async () => {
    let status = 200;
    const api = await fakeApi((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{"kind":"Node"}' : '{"kind":"Status","reason":"NotFound","message":"nodes \\"x\\" not found"}');
    });
    const lifetime = new AbortController();
    for (let i = 0; i < 20; i++) await expect(api.request({ method: 'GET', path: '/api/v1/nodes/x', signal: lifetime.signal })).resolves.toEqual({ kind: 'Node' });
    status = 404;
    await expect(api.request({ method: 'GET', path: '/api/v1/nodes/x', signal: lifetime.signal })).rejects.toMatchObject({ statusCode: 404, reason: 'NotFound' });
    server?.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    await expect(api.request({ method: 'GET', path: '/api/v1/nodes/x', signal: lifetime.signal })).rejects.toBeInstanceOf(KubeApiError); // refused
    expect(getEventListeners(lifetime.signal, 'abort')).toHaveLength(0);
  });

  it('sends its requests over one kept-alive connection, and opens a new one when the server closed it', async () => {
    let connections = 0;
    const api = await fakeApi((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"kind":"Node"}');
    });
    server!.on('connection', () => connections++);
    for (let i = 0; i < 10; i++) await expect(api.request({ method: 'GET', path: '/api/v1/nodes/x' })).resolves.toEqual({ kind: 'Node' });
    expect(connections).toBe(1);
    // The server drops it (a restart, its idle timeout) and the next request goes at once: whether
    // the pool has noticed yet or the request meets the reset, it is answered on a new connection.
    server!.closeAllConnections();
    await expect(api.request({ method: 'GET', path: '/api/v1/nodes/x' })).resolves.toEqual({ kind: 'Node' });
    expect(connections).toBe(2);
    api.close();
  });

  it('still ends a request in flight when the caller signal aborts', async () => {
    let arrived: () => void = () => undefined;
    const requested = new Promise<void>((r) => (arrived = r));
    const api = await fakeApi(() => arrived()); // never answers
    const lifetime = new AbortController();
    const pending = api.request({ method: 'GET', path: '/api/v1/nodes/x', signal: lifetime.signal, timeoutMs: NEVER_MS });
    await requested;
    lifetime.abort();
    await expect(pending).rejects.toMatchObject({ reason: 'Aborted' });
    expect(getEventListeners(lifetime.signal, 'abort')).toHaveLength(0);
  });
});
