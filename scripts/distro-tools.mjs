// Programs the project's scripts need from the distribution (Debian's packages are the only place
// they may come from: nothing else is downloaded): which are missing, and installing them with
// apt-get. One rule for every script that needs a system tool (the image's engine, the benchmarks'
// iperf3).
import { spawnSync } from 'node:child_process';

export function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** `tools` is a list of [command, Debian package]; returns the commands not on PATH. */
export function missingTools(tools) {
  return tools.filter(([cmd]) => !onPath(cmd)).map(([cmd]) => cmd);
}

/** Installs the packages of the missing commands; throws with the reason when it cannot. */
export function installTools(tools, log = console.error) {
  const missing = tools.filter(([cmd]) => !onPath(cmd)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (!onPath('apt-get')) throw new Error(`missing ${missing.join(', ')} and no apt-get to install them with`);
  log(`installing ${missing.join(' ')} from the distribution`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
  }
  const still = missingTools(tools);
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
}
