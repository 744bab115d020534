/**
 * Kubernetes Events (events.k8s.io/v1) about TunDevices: refusals, conflicts, repairs, failures.
 * TunDevices are cluster-scoped, so the Events live in `default` (as the kubelet's Node events do),
 * `regarding` the TunDevice, `related` to this Node, reportingController `tunkeeper.io/agent`,
 * reportingInstance the node's name.
 *
 * Two limits keep a misbehaving device from flooding etcd:
 * - Deduplication: an event with the same object, reason and note as one sent recently does not
 *   create a new Event object; it bumps that one's `series` (count, lastObservedTime) with a merge
 *   patch. Why a patch rather than skipping: `kubectl get events` then shows that the problem is
 *   still happening ("x12 over 40m"), which a skipped repeat would hide, at the cost of a small
 *   patch instead of a new object.
 * - A token bucket per object+reason (burst, then one every `refillMs`). Occurrences beyond it
 *   are counted, not sent; the next one that gets a token carries them in its series count.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../telemetry/logger.js';
import { API_VERSION } from '../schema/tundevice.js';
import type { KubeApi } from './api-client.js';
import { EVENTS_NAMESPACE, EVENTS_PATH, REPORTING_CONTROLLER } from './types.js';

export type EventResult = 'created' | 'series' | 'rate-limited' | 'error';

export interface TunEvent {
  /** The TunDevice's metadata.name. */
  device: string;
  type: 'Normal' | 'Warning';
  /** CamelCase: Refused, Conflict, Repaired, ApplyFailed, RolledBack, ProbeFailed. */
  reason: string;
  /** What the agent was doing: Reconcile, Validate, Probe. */
  action: string;
  note: string;
}

export interface EventRecorderOptions {
  api: KubeApi;
  nodeName: string;
  nodeUid?: () => string | undefined;
  logger: Logger;
  burst?: number;
  refillMs?: number;
  /** A repeat within this long joins the earlier Event's series. */
  seriesWindowMs?: number;
  now?: () => number;
  onResult?(result: EventResult, reason: string): void;
}

export const EVENT_DEFAULTS = { burst: 5, refillMs: 60_000, seriesWindowMs: 10 * 60_000 };

const NOTE_LIMIT = 1024;

interface Bucket {
  tokens: number;
  refilledAt: number;
  /** Occurrences not sent because the bucket was empty. */
  suppressed: number;
}

interface Sent {
  name: string;
  note: string;
  count: number;
  lastAt: number;
}

export class EventRecorder {
  readonly #o: Required<Omit<EventRecorderOptions, 'nodeUid' | 'onResult'>> & Pick<EventRecorderOptions, 'nodeUid' | 'onResult'>;
  readonly #buckets = new Map<string, Bucket>();
  readonly #sent = new Map<string, Sent>();
  #chain: Promise<void> = Promise.resolve();
  readonly #lifetime = new AbortController();

  constructor(opts: EventRecorderOptions) {
    this.#o = { ...EVENT_DEFAULTS, now: Date.now, ...opts };
  }

  /** Records an occurrence; sending happens in the background, one request at a time. */
  record(e: TunEvent): void {
    if (this.#lifetime.signal.aborted) return;
    const key = `${e.device}\n${e.reason}`;
    const now = this.#o.now();
    if (this.#buckets.size > 1024) this.#sweep(now);
    const bucket = this.#bucket(key, now);
    if (bucket.tokens < 1) {
      bucket.suppressed++;
      this.#o.onResult?.('rate-limited', e.reason);
      return;
    }
    bucket.tokens -= 1;
    const occurrences = 1 + bucket.suppressed;
    bucket.suppressed = 0;
    this.#chain = this.#chain.then(() => this.#send(key, e, occurrences, now)).catch(() => undefined);
  }

  /** Resolves when every recorded Event has been sent or given up on. */
  flush(): Promise<void> {
    return this.#chain;
  }

  /** Drops what is not sent yet (an agent stopping does not wait for a slow API server). */
  async close(): Promise<void> {
    this.#lifetime.abort();
    await this.#chain;
  }

  /** Forgets devices and reasons quiet long enough that forgetting changes nothing. */
  #sweep(now: number): void {
    for (const [key, sent] of this.#sent) if (now - sent.lastAt > this.#o.seriesWindowMs) this.#sent.delete(key);
    for (const [key, b] of this.#buckets) {
      const full = b.tokens + Math.floor((now - b.refilledAt) / this.#o.refillMs) >= this.#o.burst;
      if (full && b.suppressed === 0 && !this.#sent.has(key)) this.#buckets.delete(key);
    }
  }

  #bucket(key: string, now: number): Bucket {
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.#o.burst, refilledAt: now, suppressed: 0 };
      this.#buckets.set(key, b);
      return b;
    }
    const earned = Math.floor((now - b.refilledAt) / this.#o.refillMs);
    if (earned > 0) {
      b.tokens = Math.min(this.#o.burst, b.tokens + earned);
      b.refilledAt += earned * this.#o.refillMs;
    }
    if (b.tokens >= this.#o.burst) b.refilledAt = now;
    return b;
  }

  async #send(key: string, e: TunEvent, occurrences: number, at: number): Promise<void> {
    if (this.#lifetime.signal.aborted) return;
    const note = e.note.length > NOTE_LIMIT ? `${e.note.slice(0, NOTE_LIMIT - 1)}…` : e.note;
    const prev = this.#sent.get(key);
    try {
      if (prev && prev.note === note && at - prev.lastAt <= this.#o.seriesWindowMs) {
        const count = prev.count + occurrences;
        await this.#o.api.request({
          method: 'PATCH',
          path: `${EVENTS_PATH}/${prev.name}`,
          body: { series: { count, lastObservedTime: microTime(at) } },
          contentType: 'application/merge-patch+json',
          timeoutMs: 10_000,
          signal: this.#lifetime.signal,
        });
        prev.count = count;
        prev.lastAt = at;
        this.#o.onResult?.('series', e.reason);
        return;
      }
      const name = `${e.device}.${at.toString(16)}${randomBytes(3).toString('hex')}`;
      const uid = this.#o.nodeUid?.();
      await this.#o.api.request({
        method: 'POST',
        path: EVENTS_PATH,
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name, namespace: EVENTS_NAMESPACE, labels: { 'app.kubernetes.io/managed-by': 'tunkeeper' } },
          eventTime: microTime(at),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.#o.nodeName,
          action: e.action,
          reason: e.reason,
          type: e.type,
          note,
          regarding: { apiVersion: API_VERSION, kind: 'TunDevice', name: e.device },
          related: { apiVersion: 'v1', kind: 'Node', name: this.#o.nodeName, ...(uid ? { uid } : {}) },
        },
        timeoutMs: 10_000,
        signal: this.#lifetime.signal,
      });
      this.#sent.set(key, { name, note, count: occurrences, lastAt: at });
      this.#o.onResult?.('created', e.reason);
    } catch (err) {
      // An Event is a report, not state: one that cannot be sent is logged and dropped.
      this.#o.logger.debug({ err: (err as Error).message, device: e.device, reason: e.reason }, 'cannot send an Event');
      this.#o.onResult?.('error', e.reason);
    }
  }
}

/** metav1.MicroTime: RFC 3339 with six fractional digits. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
