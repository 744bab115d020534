/**
 * A CEL evaluator standing in for the API server's, for tests of the CRD's x-kubernetes-validations:
 * @marcbachmann/cel-js with Kubernetes' IP library (isIP, isCIDR) registered, written again from its
 * documentation with Node's own address parser (no zones, no IPv4-mapped IPv6, no leading zeros,
 * prefix within the family's bits).
 */
import { Environment } from '@marcbachmann/cel-js';
import { isIP as nodeIsIP } from 'node:net';

function k8sIsIP(s: string): boolean {
  const family = nodeIsIP(s);
  if (family === 0 || s.includes('%')) return false;
  return !(family === 6 && /^::ffff:/i.test(s) && s.includes('.'));
}

function k8sIsCIDR(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const [ip, bits] = [s.slice(0, slash), s.slice(slash + 1)];
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits) || !k8sIsIP(ip)) return false;
  return Number(bits) <= (nodeIsIP(ip) === 4 ? 32 : 128);
}

const env = new Environment()
  .registerVariable('self', 'dyn')
  .registerFunction('isIP(string): bool', k8sIsIP)
  .registerFunction('isCIDR(string): bool', k8sIsCIDR);

/** CEL integers are 64-bit: the evaluator wants BigInt for them. */
function toCel(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  // Array.from: structuredClone makes arrays of the outer realm, which the evaluator does not take.
  if (Array.isArray(v)) return Array.from(v, toCel);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  return v;
}

/** Evaluates a CRD rule with `self` bound to a plain JSON value. */
export function evaluateRule(rule: string, self: unknown): unknown {
  return env.evaluate(rule, { self: toCel(self) });
}
