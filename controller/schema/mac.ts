/** Ethernet (link-layer) addresses for tap devices. */
import type { Parsed } from './ip.js';

/**
 * Parses `02:00:5e:00:53:01` (any case) into the canonical lowercase form. A device address must be
 * unicast (I/G bit of the first octet clear) and not all zeros: the kernel refuses both with
 * EADDRNOTAVAIL (eth_prepare_mac_addr_change / is_valid_ether_addr).
 */
export function parseMac(text: string): Parsed<string> {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) {
    return { ok: false, error: `"${text}" is not a MAC address: write six two-digit hex octets separated by ':' (e.g. 02:00:00:00:00:01)` };
  }
  const canonical = text.toLowerCase();
  const first = parseInt(canonical.slice(0, 2), 16);
  if (first & 1) {
    return { ok: false, error: `"${text}" is a multicast address (the lowest bit of the first octet is set); a device needs a unicast address such as ${(first & 0xfe).toString(16).padStart(2, '0')}${canonical.slice(2)}` };
  }
  if (/^00(:00){5}$/.test(canonical)) return { ok: false, error: '00:00:00:00:00:00 is not a valid device address' };
  return { ok: true, value: canonical };
}
