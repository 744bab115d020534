/** The tests' program runner: a program that hangs past its bound is killed and named. */
import { describe, expect, it } from '@jest/globals';
import { runProcess } from './run-process.js';

describe('runProcess', () => {
  it('collects what a program printed, its exit code and what it read from stdin', async () => {
    const r = await runProcess('sh', ['-c', 'cat; echo oops >&2; exit 3'], { input: 'hello\n' });
    expect(r).toEqual({ code: 3, stdout: 'hello\n', stderr: 'oops\n' });
  });

  it('kills a program that outlives its bound and rejects with the command and what it printed so far', async () => {
    // The program prints, then waits on something that never comes (its stdin, held open by the sleep).
    const run = runProcess('sh', ['-c', 'echo waiting for the server; echo still here >&2; exec sleep 600'], { timeoutMs: 300 });
    await expect(run).rejects.toThrow(/^sh -c .*exec sleep 600 did not finish within 0\.3 s \(killed after [\d.]+ s\)\nstdout so far:\nwaiting for the server\nstderr so far:\nstill here$/);
  });

  it('a program that ends within its bound resolves as without one', async () => {
    await expect(runProcess('true', [], { timeoutMs: 60_000 })).resolves.toEqual({ code: 0, stdout: '', stderr: '' });
  });
});
