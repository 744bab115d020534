/**
 * A reflector: keeps a local copy of one kind of object (optionally filtered by a field selector)
 * in step with the API server. List, then watch from the list's resourceVersion with bookmarks;
 * a watch that ends cleanly (the server's timeout) is resumed from the last resourceVersion seen;
 * 410 Gone (the version fell out of etcd's window) means list again; any other failure means
 * reconnect after a jittered, capped backoff (a fleet of agents must not stampede a recovering
 * API server).
 *
 * Health is what the fail-static logic needs: `synced` once the first list succeeded, and
 * `connected` while the latest list or watch is known to be working. The copy is kept while
 * disconnected: the last known state stays in force.
 */
import { backoffDelay, type BackoffOptions, type Random } from '../loop/backoff.js';
import { PARTIAL_METADATA, type KubeApi, type KubeApiError, type WatchEvent } from './api-client.js';
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
  listTimeoutMs?: number;
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
  backoff: { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 } satisfies BackoffOptions,
};

export class Reflector<T extends KubeObject> {
  readonly #opts: Required<Omit<ReflectorOptions, 'fieldSelector' | 'idleTimeoutMs' | 'metadataOnly'>> & Pick<ReflectorOptions, 'fieldSelector' | 'idleTimeoutMs' | 'metadataOnly'>;
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
  readonly #lifetime = new AbortController();

  constructor(opts: ReflectorOptions, observer: ReflectorObserver<T>) {
    this.#opts = { ...REFLECTOR_DEFAULTS, random: Math.random, ...opts };
    this.#observer = observer;
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
        if (this.#resourceVersion === '') await this.#list();
        const watchStarted = Date.now();
        const outcome = await this.#watchOnce();
        if (outcome === 'gone') {
          this.#resourceVersion = '';
          this.#observer.onRestart?.(this.#opts.resource, 'gone');
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
          this.#resourceVersion = '';
          this.#observer.onRestart?.(this.#opts.resource, 'gone', err);
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

  async #list(): Promise<void> {
    const list = await this.#opts.api.request<{ items?: T[]; metadata?: { resourceVersion?: string } }>({
      method: 'GET',
      path: this.#opts.path,
      query: { fieldSelector: this.#opts.fieldSelector },
      timeoutMs: this.#opts.listTimeoutMs,
      signal: this.#lifetime.signal,
      ...(this.#opts.metadataOnly ? { accept: PARTIAL_METADATA.list } : {}),
    });
    if (this.#stopped) return;
    this.#objects.clear();
    for (const o of list.items ?? []) this.#objects.set(o.metadata?.name ?? '', o);
    this.#resourceVersion = list.metadata?.resourceVersion ?? '';
    this.#failures = 0;
    this.#lastError = undefined;
    const first = !this.#synced;
    this.#synced = true;
    this.#connected = true;
    this.#observer.onChange(this, first ? 'synced' : 'changed');
  }

  /** One watch, until it ends: 'ended' (clean), 'gone' (410), or the error. */
  async #watchOnce(): Promise<'ended' | 'gone' | KubeApiError> {
    if (this.#stopped) return 'ended';
    const timeout = Math.round(this.#opts.watchTimeoutSeconds * (1 + 0.5 * this.#opts.random()));
    // With bookmarks the API server's watch cache says something about once a minute even when
    // nothing changes, so 2.5 minutes of silence means a dead (black-holed) connection. Without
    // them a quiet watch is merely resumed from its version: harmless.
    const idle = this.#opts.idleTimeoutMs ?? Math.min(timeout * 1000 + 30_000, 150_000);
    let gone = false;
    const handle = this.#opts.api.watch<T>(
      this.#opts.path,
      {
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: timeout,
        fieldSelector: this.#opts.fieldSelector,
      },
      {
        onOpen: () => {
          // The server answered the watch from our version: the copy is current again.
          this.#failures = 0;
          this.#lastError = undefined;
          this.#setConnected(true);
        },
        onEvent: (e) => {
          if (gone) return;
          if (!this.#handle(e)) gone = true;
        },
      },
      idle,
      this.#opts.metadataOnly ? PARTIAL_METADATA.watch : undefined,
    );
    this.#watch = handle;
    const err = await handle.done;
    this.#watch = undefined;
    if (gone) return 'gone';
    if (err) return err.statusCode === 410 ? 'gone' : err;
    return 'ended';
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
