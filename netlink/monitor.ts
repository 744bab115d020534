/**
 * Monitor: rtnetlink notifications as an rxjs Observable.
 *
 * EVENTS ARE WAKE-UPS. No consumer may act on an event's contents. The kernel's notifications
 * can be lost (ENOBUFS when the receive buffer overflows — which is exactly what happens during
 * the bursts that matter), arrive after the state they describe has changed again, or describe
 * one object of a change that touched many (deleting a link deletes its addresses and routes,
 * often without a notification for each). tunkeeper is level-triggered: an event, or a
 * `resync-needed`, only means "look again" — re-list the kernel state with Rtnl (strict-checked,
 * consistent dumps), diff it against what is desired, act on the diff. Event contents are for
 * humans (`tunkeeper monitor`) and for deciding how soon to look, nothing else.
 *
 * `{ type: 'resync-needed' }` is emitted when the kernel dropped notifications for this socket
 * (ENOBUFS) or one could not be decoded; the Monitor keeps reading afterwards.
 */
import { Observable, defer, from, switchMap, type Subscriber } from 'rxjs';
import { openNetlinkTransport, type NetlinkTransport } from './client-transport.js';
import {
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV4_RULE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_IPV6_RULE,
  RTNLGRP_LINK,
  RTNLGRP_NEIGH,
} from './constants/rtnetlink.js';
import { RESYNC_NEEDED, decodeEvents, type MonitorEvent } from './monitor-events.js';

/** Links, neighbours, IPv4/IPv6 addresses, IPv4/IPv6 routes, IPv4/IPv6 rules. */
export const DEFAULT_MONITOR_GROUPS: readonly number[] = Object.freeze([
  RTNLGRP_LINK,
  RTNLGRP_NEIGH,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_IPV4_RULE,
  RTNLGRP_IPV6_RULE,
]);

/** 4 MiB: a burst of a few thousand changes fits; a bigger one ends in resync-needed, by design. */
export const DEFAULT_MONITOR_RCVBUF = 4 << 20;

export interface MonitorOptions {
  /** Network namespace name (/run/netns/NAME) or path to watch. */
  netns?: string;
  /** RTNLGRP_* groups to join (default DEFAULT_MONITOR_GROUPS). */
  groups?: readonly number[];
  /** Receive buffer to ask for, bytes (default 4 MiB). */
  rcvbuf?: number;
  /** An already open transport (e.g. the fake socket of netlink/testing); groups are then its business. */
  transport?: NetlinkTransport;
}

export class Monitor extends Observable<MonitorEvent> {
  readonly #t: NetlinkTransport;
  readonly #subscribers = new Set<Subscriber<MonitorEvent>>();
  #started = false;
  #closed = false;

  private constructor(t: NetlinkTransport) {
    super((subscriber) => this.#subscribe(subscriber));
    this.#t = t;
  }

  /**
   * Opens the socket and joins the groups. Every change made after this resolves is seen by a
   * subscriber, even one that subscribes later: notifications wait in the socket until the first
   * subscription starts reading. Unsubscribing the last subscriber closes the socket.
   */
  static async open(opts: MonitorOptions = {}): Promise<Monitor> {
    const t =
      opts.transport ??
      (await openNetlinkTransport({
        groups: [...(opts.groups ?? DEFAULT_MONITOR_GROUPS)],
        rcvbuf: opts.rcvbuf ?? DEFAULT_MONITOR_RCVBUF,
        ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      }));
    return new Monitor(t);
  }

  /** A cold Observable: each subscription opens its own Monitor, closed when it unsubscribes. */
  static watch(opts: MonitorOptions = {}): Observable<MonitorEvent> {
    return defer(() => from(Monitor.open(opts))).pipe(switchMap((m) => m));
  }

  /** Effective receive buffer in bytes. */
  get rcvbuf(): number {
    return this.#t.rcvbuf;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the socket and completes every subscriber. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#t.close();
    const subs = [...this.#subscribers];
    this.#subscribers.clear();
    for (const s of subs) s.complete();
  }

  #subscribe(subscriber: Subscriber<MonitorEvent>): () => void {
    if (this.#closed) {
      subscriber.error(new Error('this Monitor is closed (unsubscribing the last subscriber closes it); open a new one'));
      return () => undefined;
    }
    this.#subscribers.add(subscriber);
    if (!this.#started) {
      this.#started = true;
      this.#t.start({
        data: (datagrams) => this.#onData(datagrams),
        overflow: () => this.#emit(RESYNC_NEEDED),
        // The socket stays open after a receive error; what it lost is what a resync recovers.
        error: () => this.#emit(RESYNC_NEEDED),
      });
    }
    return () => {
      this.#subscribers.delete(subscriber);
      if (this.#subscribers.size === 0) this.close();
    };
  }

  #onData(datagrams: Buffer[]): void {
    const events: MonitorEvent[] = [];
    // A datagram that does not decode is a lost notification: ask for a resync where it was.
    for (const d of datagrams) if (!decodeEvents(d, events)) events.push(RESYNC_NEEDED);
    for (const e of events) this.#emit(e);
  }

  #emit(e: MonitorEvent): void {
    for (const s of this.#subscribers) {
      if (this.#closed) return;
      s.next(e);
    }
  }
}
