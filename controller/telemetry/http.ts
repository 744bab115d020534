/**
 * The agent's HTTP endpoint: GET /metrics (Prometheus text), /healthz (liveness), /readyz
 * (readiness). Read-only by construction: there is no handler that changes anything, and any
 * method but GET and HEAD is refused.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface Probe {
  ok: boolean;
  /** One line a person reads in `curl` output or a kubelet event. */
  detail: string;
}

export interface HttpEndpoints {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The process is alive and the loop is not stuck in a pass. */
  healthz(): Probe;
  /** The first complete sync is done and the last reconcile was not interrupted. */
  readyz(): Probe;
}

export interface AgentHttpServer {
  server: Server;
  /** The address actually bound (port 0 becomes a real port). */
  address: ListenAddress;
  url: string;
  close(): Promise<void>;
}

export async function startHttpServer(listen: ListenAddress, endpoints: HttpEndpoints): Promise<AgentHttpServer> {
  const server = createServer((req, res) => {
    handle(req, res, endpoints).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    });
  });
  // Probes and scrapes are short; an idle connection must not hold shutdown up.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    server,
    address: { host: a.address, port: a.port },
    url: `http://${host}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, endpoints: HttpEndpoints): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('read-only endpoint: only GET and HEAD\n');
    return;
  }
  const text = (status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  switch (path) {
    case '/metrics': {
      const m = await endpoints.metrics();
      res.writeHead(200, { 'content-type': m.contentType });
      res.end(req.method === 'HEAD' ? undefined : m.body);
      return;
    }
    case '/healthz':
    case '/readyz': {
      const p = path === '/healthz' ? endpoints.healthz() : endpoints.readyz();
      text(p.ok ? 200 : 503, `${p.ok ? 'ok' : 'not ok'}: ${p.detail}\n`);
      return;
    }
    default:
      text(404, 'not found: try /metrics, /healthz or /readyz\n');
  }
}
