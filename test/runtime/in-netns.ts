/**
 * Reaching into the node's network namespace from the test: a GET run by a child process that
 * nsenter put in that namespace (the agent listens there, not in the host's namespace).
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface NetnsAnswer {
  status?: number;
  body?: string;
  error?: string;
}

export function httpGetInNetns(netnsPath: string, url: string): Promise<NetnsAnswer> {
  return new Promise((resolve, reject) => {
    execFile('nsenter', [`--net=${netnsPath}`, process.execPath, join(HERE, 'netns-http-get.js'), url], (err, stdout, stderr) => {
      if (err) reject(new Error(`GET ${url} in ${netnsPath} failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout) as NetnsAnswer);
    });
  });
}
