/**
 * StatusWriter under a slow API server: a write that is merely queued behind others there is
 * waited for, not abandoned and sent again (each duplicate is more work for a server that is
 * already behind: bench fleet-converge measured 3-4 writes per node per change at 1,000 nodes with
 * a 15 s deadline).
 */
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { KubeApiError, type KubeApi, type RequestSpec } from '../../../controller/kube/api-client.js';
import { StatusWriter } from '../../../controller/kube/status-writer.js';
import type { TunNodeStateStatus } from '../../../controller/schema/tunnodestate.js';
import { createLogger } from '../../../controller/telemetry/logger.js';

/** An API server that answers each request after `delayMs`, or fails it as the client's deadline would. */
function slowApi(delayMs: number) {
  const sent: RequestSpec[] = [];
  const api = {
    request: (spec: RequestSpec) => {
      sent.push(spec);
      return new Promise((resolve, reject) => {
        const deadline = spec.timeoutMs ?? Infinity;
        if (deadline < delayMs) setTimeout(() => reject(new KubeApiError(`${spec.method} ${spec.path}: no answer within ${deadline / 1000} s`, 0, 'Timeout')), deadline);
        else setTimeout(() => resolve({}), delayMs);
      });
    },
  } as unknown as KubeApi;
  return { api, sent };
}

const status: TunNodeStateStatus = { devices: [] } as unknown as TunNodeStateStatus;

describe('StatusWriter against a slow API server', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('waits 20 s for a queued write instead of sending it again', async () => {
    const { api, sent } = slowApi(20_000);
    const results: string[] = [];
    const w = new StatusWriter({ api, nodeName: 'n1', logger: createLogger('silent'), random: () => 0.5, onWrite: (r) => results.push(r) });
    w.update('uid-n1', status);
    // The object, then its status: each answered after 20 s.
    for (let i = 0; i < 10 && results.length === 0; i++) await jest.advanceTimersByTimeAsync(10_000);
    expect(results).toEqual(['written']);
    expect(sent.map((s) => s.path)).toEqual(['/apis/tunkeeper.io/v1alpha1/tunnodestates/n1', '/apis/tunkeeper.io/v1alpha1/tunnodestates/n1/status']);
    await w.close();
  });
});
