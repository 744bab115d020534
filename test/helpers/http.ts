/** Plain HTTP requests for the tests of the agent's /metrics, /healthz and /readyz endpoints. */
import { request } from 'node:http';

export interface HttpAnswer {
  status: number;
  body: string;
  /** The content-type header. */
  type: string;
}

export function httpRequest(url: string, method = 'GET'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The body of a GET, whatever its status. */
export async function httpGet(url: string): Promise<string> {
  return (await httpRequest(url)).body;
}
