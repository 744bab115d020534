// The system tools the benchmarks need, installed from the distribution when missing (run as
// root by `npm run bench`), so that a fresh machine runs the whole report: iperf3 drives
// tun-offload-gbps's TCP stream. Without root or apt-get it says what is missing and the
// benchmark that needs it fails alone, saying why (bench/run.ts).
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
