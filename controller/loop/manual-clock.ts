/**
 * A Clock that moves only when told to: tests (and simulations) advance it and the timers due
 * fire in order of their deadlines.
 */
import type { Clock, TimerHandle } from './clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const t: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(t);
    return { cancel: () => void (t.cancelled = true) };
  }

  /** Deadlines of the timers still pending, soonest first. */
  pending(): number[] {
    return this.#live().map((t) => t.at);
  }

  /** Moves time forward by ms, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#live()[0];
      if (!next || next.at > end) break;
      this.#now = Math.max(this.#now, next.at);
      next.cancelled = true;
      next.fn();
    }
    this.#now = end;
  }

  #live(): Timer[] {
    this.#timers = this.#timers.filter((t) => !t.cancelled);
    return [...this.#timers].sort((a, b) => a.at - b.at || a.seq - b.seq);
  }
}
