/**
 * Time as the loop sees it. Injected so tests drive timers by hand instead of waiting: the loop
 * never calls Date.now() or setTimeout() itself.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic enough for durations and deadlines. */
  now(): number;
  /** Runs fn once after ms; the handle cancels it. Timers must not keep the process alive on their own. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    // The agent's lifetime is held by its sockets and HTTP server, not by a pending retry.
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
