// The system tools the benchmarks need, installed from the distribution when missing (run as
// root by `npm run bench`), so that a fresh machine runs the whole report: iperf3 drives
// tun-offload-gbps's TCP stream, and the Kubernetes tier's programs (kube-apiserver, etcd, built
// from pinned Go modules by scripts/kube-tools.mjs, cached) serve fleet-converge and
// rss-kube-agent-mb. Nothing here stops the run: a tool that cannot be had is reported, and the
// benchmark that needs it fails alone, saying why (bench/run.ts).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installTools, missingTools } from './distro-tools.mjs';

const TOOLS = [['iperf3', 'iperf3']];
const log = (line) => console.error(`bench-tools: ${line}`);

const missing = missingTools(TOOLS);
if (missing.length > 0) {
  if (process.getuid?.() !== 0) log(`missing ${missing.join(', ')}; run as root to have them installed`);
  else {
    try {
      installTools(TOOLS, log);
    } catch (e) {
      log(`${e.message}; the benchmarks that need them will fail and say so`);
    }
  }
}

// Its own process, as `npm run kube-tools` runs it: the build's output stays on this terminal.
const kubeTools = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'kube-tools.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
if (kubeTools.status !== 0) log('the Kubernetes programs could not be built (above); fleet-converge and rss-kube-agent-mb will fail and say so');
