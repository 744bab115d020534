/** The release namespace (where the status Lease is): the flag, the Pod's own, else the default. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseNamespace } from '../../../controller/kube/kubeconfig.js';

describe('releaseNamespace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tk-sa-'));
  const saFile = join(dir, 'namespace');
  writeFileSync(saFile, 'net-system\n');
  const inPod = { KUBERNETES_SERVICE_HOST: '198.18.0.1' };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes --namespace over everything', () => {
    expect(releaseNamespace('flagged', { ...inPod, POD_NAMESPACE: 'from-env' }, saFile)).toEqual({ namespace: 'flagged', from: '--namespace' });
  });
  it("in a Pod: POD_NAMESPACE (the chart's downward API), else the service account's namespace file", () => {
    expect(releaseNamespace(undefined, { ...inPod, POD_NAMESPACE: 'from-env' }, saFile)).toEqual({ namespace: 'from-env', from: 'POD_NAMESPACE' });
    expect(releaseNamespace(undefined, inPod, saFile)).toEqual({ namespace: 'net-system', from: saFile });
  });
  it('outside a Pod, or with no namespace file: tunkeeper-system', () => {
    expect(releaseNamespace(undefined, {}, saFile)).toEqual({ namespace: 'tunkeeper-system', from: 'default' });
    expect(releaseNamespace(undefined, inPod, join(dir, 'missing'))).toEqual({ namespace: 'tunkeeper-system', from: 'default' });
  });
});
