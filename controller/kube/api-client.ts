/**
 * The agent's HTTP client for the API server: the few requests it makes (list, watch, get,
 * create, patch), each with a deadline.
 *
 * Why not client-node's ListWatch/Watch: a black-holed API server (the connection accepted, never
 * answered) freezes them for good — the watch request has no deadline before its headers arrive,
 * a frozen stream is never noticed, and a failed list just stops the informer. The agent must
 * notice and reconnect on its own, so every request here has a deadline and every watch an idle
 * timer. @kubernetes/client-node still does what it is good at: reading the kubeconfig or the
 * in-cluster service account (KubeConfig.applyToHTTPSOptions gives the TLS material and token,
 * read afresh per request, so a rotated token is picked up).
 */
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when no response came (refused, reset, timed out). */
    readonly statusCode: number,
    /** The API server's Status.reason, e.g. NotFound, Conflict, Expired. */
    readonly reason?: string,
    /**
     * The request went out on a kept-alive connection the server had already closed (its idle
     * timeout, a restart) and got no answer: it never reached the server, so it may be sent again.
     */
    readonly staleConnection = false,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /**
   * The Accept header (default application/json). Metadata-only reads ask for
   * `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (see PARTIAL_METADATA).
   */
  accept?: string;
  /** Whole-request deadline, ms. */
  timeoutMs?: number;
  /** Ends the request early (the agent is stopping). */
  signal?: AbortSignal;
}

/** One line of a watch stream. */
export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface WatchHandle {
  /** Resolves when the stream ends: `undefined` for a clean end (server timeout), else the error. */
  done: Promise<KubeApiError | undefined>;
  abort(): void;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Accept headers that make the API server send only metadata (labels, uid, resourceVersion): a
 * watch of every Node then carries no status, which is most of a Node's bytes and changes with
 * every kubelet heartbeat that is not a Lease.
 */
export const PARTIAL_METADATA = {
  list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
  watch: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
} as const;

/**
 * How long an idle connection is kept for the next request: below the API server's own idle
 * timeout (90 s), so the server rarely closes a connection just as a request goes out on it.
 */
export const IDLE_CONNECTION_MS = 60_000;

export class KubeApi {
  /**
   * One keep-alive pool per client. client-node's applyToHTTPSOptions hands out a new Agent for
   * every request, so every request was a new TCP connection and TLS handshake: 7% of the API
   * server's CPU in a fleet-converge profile at 1,000 nodes, one handshake per node per write, and
   * as much again on the node. The pool is keyed by the TLS material of each request (Node's
   * Agent names its sockets by ca, cert and key), so a rotated client certificate opens a new
   * connection. A proxy from the kubeconfig keeps client-node's own agent.
   */
  readonly #agents = {
    https: new HttpsAgent({ keepAlive: true, timeout: IDLE_CONNECTION_MS, scheduling: 'lifo' }),
    http: new HttpAgent({ keepAlive: true, timeout: IDLE_CONNECTION_MS, scheduling: 'lifo' }),
  };

  constructor(readonly kubeConfig: KubeConfig) {}

  /** Closes the idle connections (they hold no event loop open, but a stopped agent drops them). */
  close(): void {
    this.#agents.https.destroy();
    this.#agents.http.destroy();
  }

  get server(): string {
    const c = this.kubeConfig.getCurrentCluster();
    if (!c) throw new Error('the kubeconfig has no current cluster');
    return c.server;
  }

  /** One request; resolves with the parsed JSON body of a 2xx answer, rejects with KubeApiError otherwise. */
  async request<T = unknown>(spec: RequestSpec): Promise<T> {
    const timeoutMs = spec.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    // Once, on a fresh connection: what Node's documentation advises for a reused socket's reset.
    const res = await this.#open(spec, timeoutMs).catch((e: unknown) => {
      if (e instanceof KubeApiError && e.staleConnection) return this.#open(spec, timeoutMs);
      throw e;
    });
    let text: string;
    try {
      text = await readAll(res.message, res.deadline);
    } finally {
      res.release();
    }
    const status = res.message.statusCode ?? 0;
    if (status < 200 || status > 299) throw errorFromBody(status, text, `${spec.method} ${spec.path}`);
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  /**
   * A watch: events are handed to `onEvent` in order. The stream is aborted when nothing (not even
   * a bookmark) arrives for `idleTimeoutMs`, which is how a frozen connection is noticed.
   */
  watch<T>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    handlers: { onOpen?: () => void; onEvent: (e: WatchEvent<T>) => void },
    idleTimeoutMs: number,
    accept?: string,
  ): WatchHandle {
    let abortNow: (() => void) | undefined;
    let aborted = false;
    const done = (async (): Promise<KubeApiError | undefined> => {
      let res: Opened;
      try {
        res = await this.#open({ method: 'GET', path, query: { ...query, watch: true }, ...(accept ? { accept } : {}) }, idleTimeoutMs, (abort) => {
          // An abort() that came while the request was being prepared has nothing to call yet:
          // carry it out now, or stop() would wait for the watch's idle timeout.
          abortNow = abort;
          if (aborted) abort();
        });
      } catch (e) {
        return aborted ? undefined : toApiError(e, `watch ${path}`);
      }
      const status = res.message.statusCode ?? 0;
      if (status !== 200) {
        const text = await readAll(res.message, res.deadline).catch(() => '');
        res.release();
        return errorFromBody(status, text, `watch ${path}`);
      }
      handlers.onOpen?.();
      return await new Promise<KubeApiError | undefined>((resolve) => {
        const lines = createInterface({ input: res.message, crlfDelay: Infinity });
        let settled = false;
        const finish = (err: KubeApiError | undefined): void => {
          if (settled) return;
          settled = true;
          res.release();
          lines.close();
          res.message.destroy();
          resolve(aborted ? undefined : err);
        };
        res.deadline.onExpire(() => finish(new KubeApiError(`watch ${path}: nothing received for ${Math.round(idleTimeoutMs / 1000)} s; the connection is presumed dead`, 0, 'Timeout')));
        abortNow = () => finish(undefined);
        lines.on('line', (line) => {
          res.deadline.restart();
          if (line.trim() === '') return;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            finish(new KubeApiError(`watch ${path}: unreadable event line`, 0, 'BadEvent'));
            return;
          }
          try {
            handlers.onEvent(event);
          } catch (e) {
            finish(toApiError(e, `watch ${path}`));
          }
        });
        res.message.on('error', (e) => finish(toApiError(e, `watch ${path}`)));
        // readline passes its input's errors on as its own 'error' events.
        lines.on('error', (e) => finish(toApiError(e, `watch ${path}`)));
        if (res.message.errored || res.message.destroyed) finish(new KubeApiError(`watch ${path}: the connection closed`, 0, 'Closed'));
        res.message.on('end', () => finish(undefined));
        res.message.on('close', () => finish(undefined));
      });
    })();
    return {
      done,
      abort: () => {
        aborted = true;
        abortNow?.();
      },
    };
  }

  async #open(
    spec: RequestSpec,
    timeoutMs: number,
    exposeAbort?: (abort: () => void) => void,
  ): Promise<Opened> {
    const url = new URL(this.server + spec.path);
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: RequestOptions = { method: spec.method, headers: { accept: spec.accept ?? 'application/json' } };
    await this.kubeConfig.applyToHTTPSOptions(opts);
    if (!this.kubeConfig.getCurrentCluster()?.proxyUrl) opts.agent = url.protocol === 'http:' ? this.#agents.http : this.#agents.https;
    const headers = (opts.headers ?? {}) as Record<string, string>;
    const body = spec.body === undefined ? undefined : Buffer.from(JSON.stringify(spec.body));
    if (body) {
      headers['content-type'] = spec.contentType ?? 'application/json';
      headers['content-length'] = String(body.length);
    }
    opts.headers = headers;
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    if (spec.signal?.aborted) throw new KubeApiError(`${spec.method} ${spec.path}: aborted`, 0, 'Aborted');
    return await new Promise((resolve, reject) => {
      const req = send(url, opts);
      const deadline = new Deadline(timeoutMs, () => req.destroy(new KubeApiError(`${spec.method} ${spec.path}: no answer within ${Math.round(timeoutMs / 1000)} s`, 0, 'Timeout')));
      const onAbort = (): void => {
        deadline.clear();
        req.destroy(new KubeApiError(`${spec.method} ${spec.path}: aborted`, 0, 'Aborted'));
      };
      // The signal is the agent's lifetime: every request takes its listener off again, or a
      // long-running agent would gather one per request it ever made.
      spec.signal?.addEventListener('abort', onAbort, { once: true });
      const release = (): void => {
        deadline.clear();
        spec.signal?.removeEventListener('abort', onAbort);
      };
      exposeAbort?.(() => {
        deadline.clear();
        req.destroy(new KubeApiError(`${spec.method} ${spec.path}: aborted`, 0, 'Aborted'));
      });
      req.on('response', (message) => {
        // The connection may die before the reader (a microtask away) listens: an 'error' then
        // must not become an uncaught exception. The readers check `errored` themselves.
        message.on('error', () => undefined);
        resolve({ message, deadline, release });
      });
      req.on('error', (e) => {
        release();
        const err = toApiError(e, `${spec.method} ${spec.path}`);
        const stale = req.reusedSocket && (err.reason === 'ECONNRESET' || err.reason === 'EPIPE');
        reject(stale ? new KubeApiError(err.message, 0, err.reason, true) : err);
      });
      req.end(body);
    });
  }
}

interface Opened {
  message: IncomingMessage;
  deadline: Deadline;
  /** The request is over: clears its deadline and takes its listener off the caller's signal. */
  release(): void;
}

/** A restartable timer: the request deadline, then the watch's idle timer. */
class Deadline {
  #timer: NodeJS.Timeout | undefined;
  #fn: () => void;
  constructor(
    readonly ms: number,
    fn: () => void,
  ) {
    this.#fn = fn;
    this.restart();
  }
  onExpire(fn: () => void): void {
    this.#fn = fn;
    this.restart();
  }
  restart(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fn(), this.ms);
    this.#timer.unref();
  }
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function readAll(message: IncomingMessage, deadline: Deadline): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    deadline.onExpire(() => message.destroy(new KubeApiError('the answer stopped arriving', 0, 'Timeout')));
    message.on('data', (c: Buffer) => chunks.push(c));
    let ended = false;
    if (message.errored || (message.destroyed && !message.complete)) {
      reject(new KubeApiError('the connection closed before the whole answer arrived', 0, 'Closed'));
      return;
    }
    message.on('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    message.on('error', (e) => reject(toApiError(e, 'reading the answer')));
    message.on('close', () => {
      if (!ended) reject(new KubeApiError('the connection closed before the whole answer arrived', 0, 'Closed'));
    });
  });
}

function errorFromBody(status: number, text: string, what: string): KubeApiError {
  let message = text.trim().slice(0, 500);
  let reason: string | undefined;
  try {
    const s = JSON.parse(text) as { message?: string; reason?: string };
    if (typeof s.message === 'string') message = s.message;
    if (typeof s.reason === 'string') reason = s.reason;
  } catch {
    // not a Status object: keep the text
  }
  return new KubeApiError(`${what}: ${status}${message ? `: ${message}` : ''}`, status, reason);
}

function toApiError(e: unknown, what: string): KubeApiError {
  if (e instanceof KubeApiError) return e;
  const err = e as NodeJS.ErrnoException;
  return new KubeApiError(`${what}: ${err?.message ?? String(e)}`, 0, err?.code);
}
