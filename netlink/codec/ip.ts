/**
 * IP and hardware addresses between wire bytes and the canonical text `ip -j` prints.
 *
 * IPv6 text follows inet_ntop(3) of glibc, which iproute2 uses: RFC 5952 (lowercase, no leading
 * zeros, the longest run of two or more zero groups — the first on a tie — written as `::`), plus
 * glibc's dotted tail for IPv4-mapped (`::ffff:192.0.2.1`) and IPv4-compatible (`::192.0.2.1`)
 * addresses. Comparing our strings with `ip -j` output therefore needs no normalisation.
 *
 * Hot path: a route dump formats one or two addresses per message, so formatting reads bytes by
 * index and builds strings from precomputed tables, with no intermediate arrays.
 */

const DEC: string[] = Array.from({ length: 256 }, (_, i) => String(i));
// 'n.' for each octet: three concatenations per address instead of seven, and below 13
// characters V8 makes the result flat rather than a rope that is flattened again on first use.
const DEC_DOT: string[] = DEC.map((s) => s + '.');
const HEX2: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

// Recently formatted addresses, direct-mapped by a hash of their bytes. A route dump repeats the
// same gateway and source address on thousands of routes; sharing one string per address saves
// an allocation and ~32 bytes of retained heap per route. Strings are immutable, so sharing is
// invisible to callers. 1024 slots: unique destinations evict a gateway only now and then.
const CACHE_SLOTS = 1024;
const v4Keys = new Int32Array(CACHE_SLOTS);
const v4Text: (string | undefined)[] = new Array<string | undefined>(CACHE_SLOTS).fill(undefined);
const v6Keys = new Int32Array(CACHE_SLOTS * 4);
const v6Text: (string | undefined)[] = new Array<string | undefined>(CACHE_SLOTS).fill(undefined);

/** Formats the 4 bytes at `off` as dotted decimal. */
export function formatIPv4(buf: Uint8Array, off: number): string {
  const a = buf[off]!;
  const b = buf[off + 1]!;
  const c = buf[off + 2]!;
  const d = buf[off + 3]!;
  const key = (a << 24) | (b << 16) | (c << 8) | d;
  const slot = (key ^ (key >>> 10) ^ (key >>> 20)) & (CACHE_SLOTS - 1);
  const hit = v4Text[slot];
  if (hit !== undefined && v4Keys[slot] === key) return hit;
  const text = DEC_DOT[a]! + DEC_DOT[b]! + DEC_DOT[c]! + DEC[d]!;
  v4Keys[slot] = key;
  v4Text[slot] = text;
  return text;
}

/** Formats the 16 bytes at `off` as inet_ntop(AF_INET6) does. */
export function formatIPv6(buf: Uint8Array, off: number): string {
  const k0 = (buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!;
  const k1 = (buf[off + 4]! << 24) | (buf[off + 5]! << 16) | (buf[off + 6]! << 8) | buf[off + 7]!;
  const k2 = (buf[off + 8]! << 24) | (buf[off + 9]! << 16) | (buf[off + 10]! << 8) | buf[off + 11]!;
  const k3 = (buf[off + 12]! << 24) | (buf[off + 13]! << 16) | (buf[off + 14]! << 8) | buf[off + 15]!;
  const h = k0 ^ k1 ^ k2 ^ k3;
  const slot = (h ^ (h >>> 10) ^ (h >>> 20)) & (CACHE_SLOTS - 1);
  const hit = v6Text[slot];
  const k = slot * 4;
  if (hit !== undefined && v6Keys[k] === k0 && v6Keys[k + 1] === k1 && v6Keys[k + 2] === k2 && v6Keys[k + 3] === k3) return hit;
  const text = ntop6(buf, off);
  v6Keys[k] = k0;
  v6Keys[k + 1] = k1;
  v6Keys[k + 2] = k2;
  v6Keys[k + 3] = k3;
  v6Text[slot] = text;
  return text;
}

function ntop6(buf: Uint8Array, off: number): string {
  // Longest run of zero 16-bit groups (length >= 2); the first wins a tie.
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let i = 0; i < 8; i++) {
    const zero = buf[off + 2 * i] === 0 && buf[off + 2 * i + 1] === 0;
    if (zero) {
      if (runStart < 0) runStart = i;
      const len = i - runStart + 1;
      if (len > bestLen) {
        bestLen = len;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  if (bestLen < 2) bestStart = -1;

  // glibc writes the last 32 bits as dotted IPv4 for ::a.b.c.d and ::ffff:a.b.c.d.
  const v4Tail =
    bestStart === 0 && (bestLen === 6 || (bestLen === 5 && buf[off + 10] === 0xff && buf[off + 11] === 0xff));

  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    if (v4Tail && i === 6) {
      s += DEC_DOT[buf[off + 12]!]! + DEC_DOT[buf[off + 13]!]! + DEC_DOT[buf[off + 14]!]! + DEC[buf[off + 15]!]!;
      break;
    }
    const word = (buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!;
    s += word.toString(16);
    if (i < 7) s += ':';
  }
  return s;
}

/** Formats a 4- or 16-byte address; any other length is not an IP address (undefined). */
export function formatIp(buf: Uint8Array, off: number, len: number): string | undefined {
  if (len === 4) return formatIPv4(buf, off);
  if (len === 16) return formatIPv6(buf, off);
  return undefined;
}

/** Formats a hardware address of any length as lowercase colon-separated hex ('' when empty). */
export function formatMac(buf: Uint8Array, off: number, len: number): string {
  if (len === 0) return '';
  let s = HEX2[buf[off]!]!;
  for (let i = 1; i < len; i++) s += ':' + HEX2[buf[off + i]!]!;
  return s;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const l = c | 0x20; // fold to lowercase
  if (l >= 97 && l <= 102) return l - 87; // a-f
  return -1;
}

/**
 * Writes a dotted-decimal IPv4 address taken from text[start, end) into buf at off.
 * Returns false (writing garbage at most) when the text is not exactly four decimal octets
 * 0-255 without leading zeros (inet_pton's rule: a leading zero could mean octal elsewhere).
 */
function putIPv4(text: string, start: number, end: number, buf: Uint8Array, off: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d >= 0 && d <= 9) {
      if (digits !== 0 && value === 0) return false; // leading zero
      value = value * 10 + d;
      digits++;
    } else if (d === -2 && digits !== 0 && part < 3) {
      // '.' ends an octet
      if (value > 255) return false;
      buf[off + part++] = value;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (digits === 0 || part !== 3 || value > 255) return false;
  buf[off + 3] = value;
  return true;
}

/** Writes an IPv6 address (any RFC 4291 text form, optional dotted IPv4 tail) into 16 bytes at off. */
function putIPv6(text: string, buf: Uint8Array, off: number): boolean {
  const end = text.length;
  if (end < 2) return false;
  const words = [0, 0, 0, 0, 0, 0, 0, 0];
  let n = 0; // groups written so far
  let gap = -1; // index in words where '::' stands
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false; // a single leading ':'
    gap = 0;
    i = 2;
    if (i === end) {
      buf.fill(0, off, off + 16);
      return true;
    }
  }
  while (i < end) {
    // One group: hex digits up to ':' or the end, or a dotted IPv4 tail.
    const groupStart = i;
    let value = 0;
    let digits = 0;
    while (i < end) {
      const d = hexDigit(text.charCodeAt(i));
      if (d < 0) break;
      value = (value << 4) | d;
      digits++;
      i++;
    }
    if (i < end && text.charCodeAt(i) === 46) {
      // IPv4 tail: must be last and fit in two groups.
      if (n > 6) return false;
      const tmp = new Uint8Array(4);
      if (!putIPv4(text, groupStart, end, tmp, 0)) return false;
      words[n++] = (tmp[0]! << 8) | tmp[1]!;
      words[n++] = (tmp[2]! << 8) | tmp[3]!;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4 || n === 8) return false;
    words[n++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 58) {
      if (gap >= 0) return false; // a second '::'
      gap = n;
      i++;
    } else if (i === end) {
      return false; // a trailing single ':'
    }
  }
  if (gap >= 0) {
    if (n > 7) return false; // '::' must stand for at least one group
    const tail = n - gap;
    for (let k = 0; k < tail; k++) words[7 - k] = words[n - 1 - k]!;
    for (let k = gap; k < 8 - tail; k++) words[k] = 0;
  } else if (n !== 8) {
    return false;
  }
  for (let k = 0; k < 8; k++) {
    buf[off + 2 * k] = words[k]! >>> 8;
    buf[off + 2 * k + 1] = words[k]! & 0xff;
  }
  return true;
}

/** 4 for dotted IPv4 text, 16 for IPv6 text (by the presence of ':'); no validation. */
export function ipByteLength(text: string): 4 | 16 {
  return text.indexOf(':') >= 0 ? 16 : 4;
}

/**
 * Writes an IPv4 or IPv6 address in text form into buf at off (room for 16 bytes needed for
 * IPv6). Returns the number of bytes written, 4 or 16, or 0 if the text is not an address.
 */
export function writeIp(text: string, buf: Uint8Array, off: number): 0 | 4 | 16 {
  if (putIPv4(text, 0, text.length, buf, off)) return 4;
  return text.indexOf(':') >= 0 && putIPv6(text, buf, off) ? 16 : 0;
}

/** Address text to bytes, or undefined when it does not parse. */
export function parseIp(text: string): Buffer | undefined {
  const out = Buffer.alloc(16);
  const n = writeIp(text, out, 0);
  return n === 0 ? undefined : out.subarray(0, n);
}

/** The canonical text of an address (e.g. '2001:DB8:0:0::1' → '2001:db8::1'), or undefined. */
export function canonicalIp(text: string): string | undefined {
  const b = parseIp(text);
  return b === undefined ? undefined : formatIp(b, 0, b.length);
}

/** Number of bytes of a colon-hex hardware address, or -1 when it does not parse. */
export function macByteLength(text: string): number {
  if (text.length === 0) return 0;
  let n = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 58) n++;
  return n;
}

/**
 * Writes a colon-hex hardware address ('02:00:00:00:00:01', 1-2 hex digits per byte) into buf
 * at off; returns the number of bytes written, or -1 when the text does not parse.
 */
export function writeMac(text: string, buf: Uint8Array, off: number): number {
  if (text.length === 0) return 0;
  let n = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 58;
    if (c === 58) {
      if (digits === 0) return -1;
      buf[off + n++] = value;
      value = 0;
      digits = 0;
      continue;
    }
    const d = hexDigit(c);
    if (d < 0 || digits === 2) return -1;
    value = (value << 4) | d;
    digits++;
  }
  return n;
}
