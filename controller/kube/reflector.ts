/**
 * A reflector: keeps a local copy of one kind of object (optionally filtered by a field selector)
 * in step with the API server. List, then watch from the list's resourceVersion with bookmarks;
 * a watch that ends cleanly (the server's timeout) is resumed from the last resourceVersion seen;
 * 410 Gone (the version fell out of etcd's window) means list again; any other failure means
 * reconnect after a jittered, capped backoff (a fleet of agents must not stampede a recovering
 * API server).
 *
 * The (re)sync is a streaming list where the server has one (KEP-3157, WatchList: a WATCH with
 * sendInitialEvents=true sends the collection as ADDED events, then a bookmark annotated
 * `k8s.io/initial-events-end`, then goes on as a watch): served from the watch cache, one request
 * instead of a LIST and a WATCH, and no LIST after a restarted API server's 410. The copy and its
 * observers see the same as after a LIST: the initial events fill a fresh map that replaces the
 * copy at the end bookmark (objects deleted meanwhile disappear), with one onChange for the whole
 * sync. A server that rejects it (the feature gate off: 422 "sendInitialEvents is forbidden for
 * watch unless the WatchList feature gate is enabled"), or ignores it, gets a LIST as before, and
 * this reflector does not try again.
 *
 * Health is what the fail-static logic needs: `synced` once the first list succeeded, and
 * `connected` while the latest list or watch is known to be working. The copy is kept while
 * disconnected: the last known state stays in force.
 */
import { backoffDelay, type BackoffOptions, type Random } from '../loop/backoff.js';
import { KubeApiError, PARTIAL_METADATA, type KubeApi, type WatchEvent } from './api-client.js';
import type { KubeObject } from './types.js';

export interface ReflectorOptions {
  api: KubeApi;
  /** e.g. /api/v1/nodes or /apis/tunkeeper.io/v1alpha1/tundevices */
  path: string;
  /** For logs and metrics: 'node', 'tundevices'. */
  resource: string;
  fieldSelector?: string;
  /** Metadata only (PartialObjectMetadata): labels and uid without spec or status. */
  metadataOnly?: boolean;
  /** Server-side watch timeout, s (jittered up to +50% per watch so a fleet's reconnects spread out). */
  watchTimeoutSeconds?: number;
  /** A watch quiet for longer than this (no event, no bookmark) is presumed dead. Default 150 s (bookmarks come about every minute). */
  idleTimeoutMs?: number;
  /** Deadline of a LIST, and of a streaming list's initial events (until its end bookmark). */
  listTimeoutMs?: number;
  /** Deadline of a streaming list's initial events alone, if it must differ (default listTimeoutMs). */
  initialEventsTimeoutMs?: number;
  /** Re-sync with a streaming list (WatchList) while the server takes it (default true). */
  streamingList?: boolean;
  /**
   * After a 410 Gone the re-sync waits a random 0..goneJitterMs (default 1,000 ms). A compaction
   * or a restarted watch cache answers every agent's watch with 410 at about the same moment, and
   * a 410 otherwise goes straight to the re-sync: a fleet must not re-sync in lockstep. The copy
   * stays in force meanwhile, so the cost is at most this much staleness, once per 410.
   */
  goneJitterMs?: number;
  backoff?: BackoffOptions;
  random?: Random;
}

export type ReflectorChange = 'synced' | 'changed' | 'connected' | 'disconnected';

export interface ReflectorObserver<T extends KubeObject> {
  /** The copy or the health changed. */
  onChange(reflector: Reflector<T>, change: ReflectorChange): void;
  /** A list or watch failed, or a watch had to be restarted. */
  onRestart?(resource: string, reason: 'gone' | 'error' | 'timeout', error?: KubeApiError): void;
}

export const REFLECTOR_DEFAULTS = {
  watchTimeoutSeconds: 300,
  listTimeoutMs: 60_000,
  streamingList: true,
  goneJitterMs: 1_000,
  backoff: { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 } satisfies BackoffOptions,
};

/** The annotation on the bookmark that ends a streaming list's initial events. */
export const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

type WatchOutcome = 'ended' | 'gone' | KubeApiError;
/** A streaming list that did not deliver: rejected or ignored ('unsupported'), or no end bookmark in time. */
type StreamOutcome = WatchOutcome | 'unsupported' | 'no-end';

/** Options with no default: absent means "none" (or, for initialEventsTimeoutMs, listTimeoutMs). */
type UnsetByDefault = 'fieldSelector' | 'idleTimeoutMs' | 'metadataOnly' | 'initialEventsTimeoutMs';

export class Reflector<T extends KubeObject> {
  readonly #opts: Required<Omit<ReflectorOptions, UnsetByDefault>> & Pick<ReflectorOptions, UnsetByDefault>;
  readonly #observer: ReflectorObserver<T>;
  readonly #objects = new Map<string, T>();
  #resourceVersion = '';
  #synced = false;
  #connected = false;
  #stopped = false;
  #failures = 0;
  #watch: { abort(): void } | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  #running: Promise<void> | undefined;
  #lastError: string | undefined;
  #streamSync: boolean;
  /** Streaming lists in a row that never sent their end bookmark (LISTs between them do not count). */
  #streamMisses = 0;
  readonly #counts = { lists: 0, streams: 0 };
  readonly #lifetime = new AbortController();

  constructor(opts: ReflectorOptions, observer: ReflectorObserver<T>) {
    this.#opts = { ...REFLECTOR_DEFAULTS, random: Math.random, ...opts };
    this.#observer = observer;
    this.#streamSync = this.#opts.streamingList;
  }

  /** Syncs so far: LIST requests, and streaming lists started. */
  get counts(): { lists: number; streams: number } {
    return { ...this.#counts };
  }
  /** Whether the next (re)sync will try a streaming list. */
  get streamingList(): boolean {
    return this.#streamSync;
  }

  get resource(): string {
    return this.#opts.resource;
  }
  /** The first list has succeeded (the copy is a real view of the cluster, maybe an old one). */
  get synced(): boolean {
    return this.#synced;
  }
  /** The latest list or watch works: the copy is current. */
  get connected(): boolean {
    return this.#connected;
  }
  get lastError(): string | undefined {
    return this.#lastError;
  }
  objects(): T[] {
    return [...this.#objects.values()];
  }

  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#lifetime.abort();
    this.#watch?.abort();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
    await this.#running;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        const watchStarted = Date.now();
        let outcome: WatchOutcome | undefined;
        if (this.#resourceVersion === '' && this.#streamSync) {
          const streamed = await this.#watchOnce(true);
          if (streamed === 'unsupported' || streamed === 'no-end') {
            // A server without it (or one that ignores the parameter and never ends the initial
            // events): LIST, now and from now on. A missing end bookmark may also be a server too
            // busy to finish within the deadline, so that needs two in a row.
            this.#streamMisses++;
            if (streamed === 'unsupported' || this.#streamMisses >= 2) this.#streamSync = false;
          } else outcome = streamed;
        }
        if (outcome === undefined) {
          if (this.#resourceVersion === '') await this.#list();
          outcome = await this.#watchOnce(false);
        }
        if (outcome === 'gone') {
          await this.#gone();
          continue;
        }
        // The server's timeout: resume from where we are. A watch that ends at once, again and
        // again (a proxy closing streams), must not become a hot loop: that one backs off.
        if (outcome === 'ended' && (this.#stopped || Date.now() - watchStarted > 1000)) continue;
        if (outcome !== 'ended') {
          this.#setConnected(false);
          this.#lastError = outcome.message;
          this.#observer.onRestart?.(this.#opts.resource, outcome.reason === 'Timeout' ? 'timeout' : 'error', outcome);
        }
      } catch (e) {
        const err = e as KubeApiError;
        if (this.#stopped) break;
        if (err.statusCode === 410) {
          await this.#gone(err);
          continue;
        }
        this.#setConnected(false);
        this.#lastError = err.message;
        this.#observer.onRestart?.(this.#opts.resource, err.reason === 'Timeout' ? 'timeout' : 'error', err);
      }
      this.#failures++;
      await this.#pause(backoffDelay(this.#failures, this.#opts.backoff, this.#opts.random));
    }
  }

  /** Our version is too old: re-sync from scratch, after a little jitter (see goneJitterMs). */
  async #gone(err?: KubeApiError): Promise<void> {
    this.#resourceVersion = '';
    this.#observer.onRestart?.(this.#opts.resource, 'gone', err);
    const ms = Math.round(this.#opts.goneJitterMs * Math.min(1, Math.max(0, this.#opts.random())));
    if (ms > 0 && !this.#stopped) await this.#pause(ms);
  }

  async #list(): Promise<void> {
    this.#counts.lists++;
    const list = await this.#opts.api.request<{ items?: T[]; metadata?: { resourceVersion?: string } }>({
      method: 'GET',
      path: this.#opts.path,
      query: { fieldSelector: this.#opts.fieldSelector },
      timeoutMs: this.#opts.listTimeoutMs,
      signal: this.#lifetime.signal,
      ...(this.#opts.metadataOnly ? { accept: PARTIAL_METADATA.list } : {}),
    });
    if (this.#stopped) return;
    this.#replace(list.items ?? [], list.metadata?.resourceVersion ?? '');
  }

  /** A whole new view (a LIST's, or a streaming list's at its end bookmark): one onChange. */
  #replace(items: Iterable<T>, resourceVersion: string): void {
    this.#objects.clear();
    for (const o of items) this.#objects.set(o.metadata?.name ?? '', o);
    this.#resourceVersion = resourceVersion;
    this.#failures = 0;
    this.#lastError = undefined;
    const first = !this.#synced;
    this.#synced = true;
    this.#connected = true;
    this.#observer.onChange(this, first ? 'synced' : 'changed');
  }

  /**
   * One watch, until it ends: 'ended' (clean), 'gone' (410), or the error. With `stream`, a
   * streaming list: the initial events are gathered apart and replace the copy at the end
   * bookmark, and the same watch goes on; 'unsupported' or 'no-end' when that did not happen.
   */
  async #watchOnce(stream: false): Promise<WatchOutcome>;
  async #watchOnce(stream: true): Promise<StreamOutcome>;
  async #watchOnce(stream: boolean): Promise<StreamOutcome> {
    if (this.#stopped) return 'ended';
    const timeout = Math.round(this.#opts.watchTimeoutSeconds * (1 + 0.5 * this.#opts.random()));
    // With bookmarks the API server's watch cache says something about once a minute even when
    // nothing changes, so 2.5 minutes of silence means a dead (black-holed) connection. Without
    // them a quiet watch is merely resumed from its version: harmless.
    const idle = this.#opts.idleTimeoutMs ?? Math.min(timeout * 1000 + 30_000, 150_000);
    let gone = false;
    // Streaming list: the initial events until the end bookmark; undefined once it came.
    let initial: Map<string, T> | undefined = stream ? new Map() : undefined;
    let unsupported = false;
    let endTimer: NodeJS.Timeout | undefined;
    if (stream) this.#counts.streams++;
    const handle = this.#opts.api.watch<T>(
      this.#opts.path,
      stream
        ? {
            // From the current state ("" is a consistent read, served by the watch cache); a
            // remembered version could be one a restored etcd never reached.
            sendInitialEvents: true,
            resourceVersionMatch: 'NotOlderThan',
            allowWatchBookmarks: true,
            timeoutSeconds: timeout,
            fieldSelector: this.#opts.fieldSelector,
          }
        : {
            resourceVersion: this.#resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: timeout,
            fieldSelector: this.#opts.fieldSelector,
          },
      {
        onOpen: () => {
          // A streaming list is working once its initial events are all here, not before.
          if (initial) return;
          // The server answered the watch from our version: the copy is current again.
          this.#failures = 0;
          this.#lastError = undefined;
          this.#setConnected(true);
        },
        onEvent: (e) => {
          if (gone || unsupported) return;
          if (initial) {
            const r = this.#initialEvent(initial, e);
            if (r === 'end') {
              initial = undefined;
              clearTimeout(endTimer);
            } else if (r === 'gone') gone = true;
            else if (r === 'unsupported') {
              unsupported = true;
              handle.abort();
            }
            return;
          }
          if (!this.#handle(e)) gone = true;
        },
      },
      idle,
      this.#opts.metadataOnly ? PARTIAL_METADATA.watch : undefined,
    );
    this.#watch = handle;
    let noEnd = false;
    if (stream) {
      endTimer = setTimeout(() => {
        noEnd = true;
        handle.abort();
      }, this.#opts.initialEventsTimeoutMs ?? this.#opts.listTimeoutMs);
      endTimer.unref();
    }
    const err = await handle.done;
    clearTimeout(endTimer);
    this.#watch = undefined;
    if (this.#stopped) return 'ended';
    if (gone) return 'gone';
    if (unsupported) return 'unsupported';
    if (initial) {
      // The initial events never ended: rejected, not understood (no end bookmark in time), or
      // the connection failed or closed on the way (a server going away: retried after the
      // backoff, by stream again).
      if (err && rejectsStreamingList(err)) return 'unsupported';
      if (noEnd) return 'no-end';
      if (err) return err.statusCode === 410 ? 'gone' : err;
      return new KubeApiError(`watch ${this.#opts.path}: the stream ended before its initial events did`, 0, 'Closed');
    }
    if (err) return err.statusCode === 410 ? 'gone' : err;
    return 'ended';
  }

  /** One event of a streaming list's initial state. */
  #initialEvent(initial: Map<string, T>, e: WatchEvent<T>): 'more' | 'end' | 'gone' | 'unsupported' {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string };
      if (status.code === 410) return 'gone';
      if (rejectsStreamingList(new KubeApiError(status.message ?? '', status.code ?? 0))) return 'unsupported';
      this.#lastError = status.message;
      return 'more';
    }
    if (e.type === 'BOOKMARK') {
      // A plain bookmark before the end one: a server that ignored sendInitialEvents.
      const meta = e.object?.metadata as { annotations?: Record<string, string> } | undefined;
      if (meta?.annotations?.[INITIAL_EVENTS_END] !== 'true') return 'unsupported';
      this.#streamMisses = 0;
      this.#replace(initial.values(), e.object.metadata?.resourceVersion ?? '');
      return 'end';
    }
    const name = e.object?.metadata?.name ?? '';
    if (e.type === 'DELETED') initial.delete(name);
    else initial.set(name, e.object);
    return 'more';
  }

  /** Applies one event; false when the watch says our version is too old (410). */
  #handle(e: WatchEvent<T>): boolean {
    const rv = e.object?.metadata?.resourceVersion;
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string };
      if (status.code === 410) return false;
      this.#lastError = status.message;
      return true;
    }
    if (rv) this.#resourceVersion = rv;
    if (e.type === 'BOOKMARK') return true;
    const name = e.object.metadata?.name ?? '';
    if (e.type === 'DELETED') this.#objects.delete(name);
    else this.#objects.set(name, e.object);
    this.#observer.onChange(this, 'changed');
    return true;
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    this.#observer.onChange(this, connected ? 'connected' : 'disconnected');
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#sleep = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.#sleep = { timer, wake };
    });
  }
}

/**
 * A server without streaming lists: the WatchList feature gate off answers 422 Invalid
 * ("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList
 * feature gate is enabled", kube-apiserver 1.36); older ones a 400, and a proxy or policy may 403.
 */
function rejectsStreamingList(err: KubeApiError): boolean {
  return [400, 403, 422].includes(err.statusCode) && /sendInitialEvents|WatchList|resourceVersionMatch/i.test(err.message);
}
