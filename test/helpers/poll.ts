/**
 * Waiting on what the API server shows, which has no callback: ask again until the probe gives a
 * value. The guard is only against a hang (it ends the wait with the probe's last error), never a
 * speed claim: the wait ends on the event, whenever it comes.
 */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined | false>, guardMs = 90_000, everyMs = 200): Promise<T> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > guardMs) throw new Error(`gave up waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
