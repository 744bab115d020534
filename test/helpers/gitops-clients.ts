/**
 * How GitOps tools judge an object's health, asked of their real code rather than of a model of
 * it: `kstatusOf` runs Flux's kstatus library (status.Compute, sigs.k8s.io/cli-utils) and
 * `argoHealthOf` runs a health.lua the way Argo CD does (gopher-lua, Argo CD's VM setup and result
 * handling). Both are small Go programs built with the other Kubernetes test tools
 * (test/helpers/kube-tools.ts, scripts/kube-tools/kstatus and scripts/kube-tools/argocd-lua); each
 * call is one process, the object going in as JSON on stdin and the verdict coming back as one
 * JSON line.
 */
import { spawn } from 'node:child_process';
import { kubeToolPaths, missingKubeTools, type KubeToolName } from './kube-tools.js';

export interface HealthVerdict {
  /**
   * kstatus: InProgress, Failed, Current, Terminating, NotFound or Unknown. Argo CD: Healthy,
   * Progressing, Degraded, Suspended, Missing or Unknown, or '' when the script returned nil or an
   * empty table (Argo CD's "no health" answer).
   */
  status: string;
  message: string;
}

function toolPath(name: KubeToolName): string {
  const paths = kubeToolPaths();
  if (!paths) {
    throw new Error(`the GitOps health clients need the Kubernetes test tools (${missingKubeTools().join(', ')} missing): run \`node scripts/kube-tools.mjs\``);
  }
  return paths[name];
}

/** Runs a tool with `input` on stdin; resolves with its verdict, rejects with its stderr. */
function run(binary: string, args: string[], input: string): Promise<HealthVerdict> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', (e) => reject(new Error(`${binary}: ${e.message}`)));
    // A tool that exits before reading all of stdin closes the pipe: its exit status says why.
    child.stdin.on('error', () => {});
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (code !== 0) {
        reject(new Error(stderr || `${binary} ${args.join(' ')} exited with ${code ?? signal} and no message`));
        return;
      }
      const line = stdout.trim();
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        reject(new Error(`${binary} printed ${JSON.stringify(line)}, not one JSON line`));
        return;
      }
      const v = parsed as Partial<HealthVerdict> | null;
      if (typeof v?.status !== 'string' || typeof v.message !== 'string') {
        reject(new Error(`${binary} printed ${line}, not {"status": string, "message": string}`));
        return;
      }
      resolve({ status: v.status, message: v.message });
    });
    child.stdin.end(input);
  });
}

/** kstatus's verdict on one object (status.Compute), as Flux's health checks see it. */
export async function kstatusOf(obj: unknown): Promise<HealthVerdict> {
  return run(toolPath('kstatus'), [], JSON.stringify(obj));
}

/**
 * Argo CD's verdict on one object from the health script at `scriptPath`, run as Argo CD runs a
 * resource customization. `openLibs` is Argo CD's `resource.customizations.useOpenLibs.<kind>`:
 * off by default (then the script has no string, math or os library; `require("os")` gives only
 * time and date), on for the scripts built into Argo CD. An invalid status is not an error in
 * Argo CD: it resolves as Unknown "Lua returned an invalid health status". Rejects, with the text
 * Argo CD would show as the health message, when the script does not compile, fails, runs past
 * Argo CD's 1 s limit or returns something other than a table or nil.
 */
export async function argoHealthOf(obj: unknown, scriptPath: string, opts: { openLibs?: boolean } = {}): Promise<HealthVerdict> {
  return run(toolPath('argocdLua'), [...(opts.openLibs ? ['--open-libs'] : []), scriptPath], JSON.stringify(obj));
}
