/**
 * Run by in-netns.ts inside a network namespace (nsenter --net): one GET, printed as JSON
 * {status, body} on stdout, or {error} when there was no answer.
 */
import { request } from 'node:http';

const url = process.argv[2];
if (!url) throw new Error('usage: netns-http-get.js URL');
const req = request(url, (res) => {
  let body = '';
  res.setEncoding('utf8').on('data', (c: string) => (body += c));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode ?? 0, body })));
});
req.on('error', (e) => process.stdout.write(JSON.stringify({ error: e.message })));
req.end();
