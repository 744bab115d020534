/**
 * Writes this node's TunNodeState: server-side apply with the field manager `tunkeeper-agent`
 * (force: the object is this agent's alone), the object (name, ownerReference to the Node) once,
 * then the status through the status subresource.
 *
 * Writes are coalesced and rate limited: `update` only records the latest wanted status; at most
 * one write is in flight, and the next waits `minIntervalMs` after the previous one, so a burst of
 * passes is one write of the last status. A status whose content (timestamps aside) equals the
 * last one written is not written at all. A failed write (API server away) is retried with a
 * jittered, capped backoff, always with the latest status.
 */
import type { Logger } from '../telemetry/logger.js';
import { backoffDelay, type BackoffOptions, type Random } from '../loop/backoff.js';
import { TUN_NODE_STATE_KIND, type TunNodeStateStatus } from '../schema/tunnodestate.js';
import { API_VERSION } from '../schema/tundevice.js';
import { KubeApiError, type KubeApi } from './api-client.js';
import { statusContent } from './conditions.js';
import { FIELD_MANAGER, TUN_NODE_STATES_PATH } from './types.js';

export type StatusWriteResult = 'written' | 'unchanged' | 'error';

export interface StatusWriterOptions {
  api: KubeApi;
  nodeName: string;
  logger: Logger;
  minIntervalMs?: number;
  backoff?: BackoffOptions;
  random?: Random;
  requestTimeoutMs?: number;
  onWrite?(result: StatusWriteResult): void;
}

export const STATUS_WRITER_DEFAULTS = {
  minIntervalMs: 1_000,
  backoff: { initialMs: 1_000, maxMs: 60_000, factor: 2, jitter: 0.5 } satisfies BackoffOptions,
  /**
   * Long on purpose. A write the API server has not answered yet is almost always queued behind
   * others there and will still be carried out; abandoning it and sending the next one doubles the
   * work of a server that is already behind. fleet-converge at 1,000 nodes with 15 s: every node's
   * write timed out behind the others and was sent again, 3-4 writes per node per change, and a
   * change took 70-80 s to reach the fleet instead of seconds (congestion collapse).
   */
  requestTimeoutMs: 60_000,
};

const APPLY = 'application/apply-patch+yaml';

export class StatusWriter {
  readonly #o: Required<Omit<StatusWriterOptions, 'onWrite'>> & Pick<StatusWriterOptions, 'onWrite'>;
  #wanted: { nodeUid: string; status: TunNodeStateStatus } | undefined;
  #written: string | undefined;
  #objectFor: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #lastWriteAt = 0;
  #failures = 0;
  #closed = false;
  readonly #lifetime = new AbortController();

  constructor(opts: StatusWriterOptions) {
    this.#o = { ...STATUS_WRITER_DEFAULTS, random: Math.random, ...opts };
  }

  get path(): string {
    return `${TUN_NODE_STATES_PATH}/${encodeURIComponent(this.#o.nodeName)}`;
  }

  /** The status currently stored (to carry its transition times over a restart); undefined if none or unreachable. */
  async read(): Promise<TunNodeStateStatus | undefined> {
    try {
      const obj = await this.#o.api.request<{ status?: TunNodeStateStatus }>({ method: 'GET', path: this.path, timeoutMs: 5_000, signal: this.#lifetime.signal });
      return obj.status;
    } catch (e) {
      if (!(e instanceof KubeApiError && e.statusCode === 404)) this.#o.logger.debug({ err: (e as Error).message }, 'cannot read the previous TunNodeState');
      return undefined;
    }
  }

  /** The status to write (the latest wins). `nodeUid` is for the ownerReference. */
  update(nodeUid: string, status: TunNodeStateStatus): void {
    if (this.#closed) return;
    this.#wanted = { nodeUid, status };
    this.#schedule(0);
  }

  /** The API server is reachable again: a write waiting out its backoff goes now. */
  retryNow(): void {
    if (this.#failures === 0 || !this.#timer) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#schedule(0);
  }

  /** Something is waiting to be written, or being written. */
  get pending(): boolean {
    return this.#timer !== undefined || this.#inFlight !== undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#lifetime.abort();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }

  #schedule(extraDelay: number): void {
    if (this.#closed || this.#timer || this.#inFlight) return;
    const wait = Math.max(extraDelay, this.#lastWriteAt + this.#o.minIntervalMs - Date.now(), 0);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#inFlight = this.#write().finally(() => {
        this.#inFlight = undefined;
      });
    }, wait);
    this.#timer.unref();
  }

  async #write(): Promise<void> {
    const wanted = this.#wanted;
    if (!wanted || this.#closed) return;
    const content = statusContent(wanted.status);
    if (content === this.#written && this.#objectFor === wanted.nodeUid) {
      this.#o.onWrite?.('unchanged');
      return;
    }
    this.#lastWriteAt = Date.now();
    try {
      if (this.#objectFor !== wanted.nodeUid) {
        await this.#apply(this.path, {
          apiVersion: API_VERSION,
          kind: TUN_NODE_STATE_KIND,
          metadata: {
            name: this.#o.nodeName,
            labels: { 'app.kubernetes.io/managed-by': 'tunkeeper' },
            // The Node's garbage collection takes its TunNodeState with it.
            ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.#o.nodeName, uid: wanted.nodeUid }],
          },
        });
        this.#objectFor = wanted.nodeUid;
      }
      await this.#apply(`${this.path}/status`, { apiVersion: API_VERSION, kind: TUN_NODE_STATE_KIND, metadata: { name: this.#o.nodeName }, status: wanted.status });
      this.#written = content;
      this.#failures = 0;
      this.#o.onWrite?.('written');
    } catch (e) {
      if (this.#closed) return;
      // Deleted behind our back: apply the object again on the next try.
      if (e instanceof KubeApiError && e.statusCode === 404) this.#objectFor = undefined;
      this.#failures++;
      const delay = backoffDelay(this.#failures, this.#o.backoff, this.#o.random);
      this.#o.logger.warn({ err: (e as Error).message, attempt: this.#failures, delayMs: delay }, `cannot write TunNodeState ${this.#o.nodeName}; retrying in ${delay} ms`);
      this.#o.onWrite?.('error');
      this.#inFlight = undefined;
      this.#schedule(delay);
      return;
    }
    // A newer status arrived while writing.
    if (this.#wanted !== wanted) {
      this.#inFlight = undefined;
      this.#schedule(0);
    }
  }

  #apply(path: string, body: unknown): Promise<unknown> {
    return this.#o.api.request({
      method: 'PATCH',
      path,
      query: { fieldManager: FIELD_MANAGER, force: true },
      body,
      contentType: APPLY,
      timeoutMs: this.#o.requestTimeoutMs,
      signal: this.#lifetime.signal,
    });
  }
}
