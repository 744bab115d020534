import { describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatProblem } from '../../../controller/schema/problem.js';
import { loadDeclarations } from '../../../controller/sources/files-load.js';

// dist/test/controller/schema -> test/fixtures/declarations/bad
const BAD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'test', 'fixtures', 'declarations', 'bad');

/**
 * Every bad declaration in the fixtures, with each line `tunkeeper validate` prints for it:
 * `line:col: field.path: message` (the file name is prefixed). The position is the offending text
 * itself: the value of a bad field, the key of an unknown or misplaced field, the parent's key for
 * a missing field, the use of an alias rather than its anchor.
 */
const CASES: [string, string[]][] = [
  ['address-bad-octet.yaml', ["8:7: spec.addresses[1]: \"192.0.2.300\" is not an IPv4 address (300 is more than 255)"]],
  ['address-duplicate.yaml', ["8:7: spec.addresses[1]: 2001:db8:1::1 is already declared at spec.addresses[0]; an address can be on a device once (with one prefix length)"]],
  ['address-leading-zero.yaml', ["6:15: spec.addresses[0]: \"192.0.2.010\": \"010\" has a leading zero, which some tools read as octal; write 10"]],
  ['address-multicast.yaml', ["7:7: spec.addresses[0]: \"224.0.0.1/24\" cannot be a device address: it is a multicast address"]],
  ['address-no-prefix.yaml', ["7:7: spec.addresses[0]: \"192.0.2.1\" has no prefix length: write it as 192.0.2.1/32 for a single address, or with the subnet's length"]],
  ['address-not-a-list.yaml', ["6:14: spec.addresses: must be a list, got the string \"192.0.2.1/24\""]],
  ['address-prefix-too-long.yaml', ["7:7: spec.addresses[0]: \"2001:db8::1/129\": the prefix length must be a number from 0 to 128"]],
  ['alias-points-at-use.yaml', ["7:8: spec.mtu: must be from 68 to 65535, got 60 (the kernel accepts 68 to 65535 on a TUN/TAP device; IPv6 needs at least 1280)"]],
  ['apiversion-other.yaml', ["1:13: apiVersion: \"tunkeeper.io/v1beta1\" is not supported: this version of tunkeeper reads tunkeeper.io/v1alpha1"]],
  ['billion-laughs.yaml', ["1:1: document aliases expand to too much data (more than 100 expansions): a declaration does not need this, and it is how \"billion laughs\" documents exhaust memory"]],
  ['deep-nesting.yaml', ["6:73: nesting is deeper than 64 levels (65 here); a TunDevice needs about 6, so this is not a declaration"]],
  ['duplicate-ifname.yaml', ["6:11: spec.ifname: interface name \"tk-same\" is also declared at duplicate-ifname.yaml:13:11; neither declaration is applied until only one remains", "13:11: spec.ifname: interface name \"tk-same\" is also declared at duplicate-ifname.yaml:6:11; neither declaration is applied until only one remains"]],
  ['duplicate-name.yaml', ["4:9: metadata.name: TunDevice \"tk-twice\" is also declared at duplicate-name.yaml:9:9; neither declaration is applied until only one remains", "9:9: metadata.name: TunDevice \"tk-twice\" is also declared at duplicate-name.yaml:4:9; neither declaration is applied until only one remains"]],
  ['group-negative.yaml', ["6:10: spec.group: must be from 0 to 4294967294, got -1 (4294967295 is (gid_t)-1, which the kernel reads as \"no group\": leave the field out instead)"]],
  ['ifname-colon.yaml', ["6:11: spec.ifname: \"tk:0\" contains ':', which the kernel refuses (it separates old-style alias labels such as eth0:1)"]],
  ['ifname-dotdot.yaml', ["6:11: spec.ifname: \"..\" is not allowed as an interface name (it names a directory in /sys/class/net)"]],
  ['ifname-nbsp-byte.yaml', ["6:11: spec.ifname: \"tk-\u00e0\" contains a character whose UTF-8 encoding contains byte 0xA0, which the kernel treats as whitespace (byte 5); the kernel refuses whitespace in interface names"]],
  ['ifname-slash.yaml', ["6:11: spec.ifname: \"tk/0\" contains '/', which the kernel refuses (names are directories in /sys/class/net)"]],
  ['ifname-space.yaml', ["6:11: spec.ifname: \"tk 0\" contains whitespace (byte 3); the kernel refuses whitespace in interface names"]],
  ['ifname-template.yaml', ["6:11: spec.ifname: \"tk%d\" contains '%', which TUNSETIFF treats as a template (tk%d becomes tk0, tk1 ...); declare the exact name"]],
  ['ifname-too-long.yaml', ["6:11: spec.ifname: \"tk-very-long-name0\" is 18 characters; the kernel allows at most 15 bytes (IFNAMSIZ 16 with the NUL)"]],
  ['ipv6-needs-1280.yaml', ["6:8: spec.mtu: is 1200, but spec.addresses[1] (2001:db8:1::1/64) is IPv6, which needs an MTU of at least 1280: the kernel disables IPv6 on a smaller link"]],
  ['kind-other.yaml', ["2:7: kind: \"ConfigMap\" is not a kind tunkeeper reads: declarations are TunDevice documents (apiVersion tunkeeper.io/v1alpha1)"]],
  ['mac-malformed.yaml', ["7:15: spec.macAddress: \"02-00-00-00-00-01\" is not a MAC address: write six two-digit hex octets separated by ':' (e.g. 02:00:00:00:00:01)"]],
  ['mac-multicast.yaml', ["7:15: spec.macAddress: \"01:00:5e:00:53:01\" is a multicast address (the lowest bit of the first octet is set); a device needs a unicast address such as 00:00:5e:00:53:01"]],
  ['mac-on-tun.yaml', ["7:3: spec.macAddress: is only for tap devices: a tun device has no link-layer address (set mode: tap, or remove macAddress)"]],
  ['metadata-namespace.yaml', ["5:3: metadata.namespace: unknown field \"namespace\" (allowed here: name, labels, annotations)"]],
  ['missing-name.yaml', ["3:1: metadata.name: is required"]],
  ['mode-unknown.yaml', ["6:9: spec.mode: must be one of \"tun\", \"tap\", got \"tan\""]],
  ['mtu-fraction.yaml', ["6:8: spec.mtu: must be a whole number, got 1420.5 (the kernel accepts 68 to 65535 on a TUN/TAP device; IPv6 needs at least 1280)"]],
  ['mtu-string.yaml', ["6:8: spec.mtu: must be a whole number, got the string \"big\""]],
  ['mtu-too-small.yaml', ["6:8: spec.mtu: must be from 68 to 65535, got 50 (the kernel accepts 68 to 65535 on a TUN/TAP device; IPv6 needs at least 1280)"]],
  ['name-too-long-for-ifname.yaml', ["4:9: metadata.name: is also the interface name, since spec.ifname is not set, but \"tk-a-long-object-name\" is 21 characters; the kernel allows at most 15 bytes (IFNAMSIZ 16 with the NUL): set spec.ifname"]],
  ['name-uppercase.yaml', ["4:9: metadata.name: \"TK-Edge\" is not a valid object name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"]],
  ['no-kind.yaml', ["1:1: has no kind: every document must be a Kubernetes-style object, \"apiVersion: tunkeeper.io/v1alpha1\" and \"kind: TunDevice\""]],
  ['node-selector-in-file.yaml', ["6:3: spec.nodeSelector: applies only to TunDevice objects in Kubernetes; a file declares devices for the node that reads it (remove nodeSelector, or give each node its own files)"]],
  ['not-a-mapping.yaml', ["1:1: a declaration must be a TunDevice mapping (apiVersion, kind, metadata, spec), got a list"]],
  ['owner-minus-one.yaml', ["6:10: spec.owner: must be from 0 to 4294967294, got 4294967295 (4294967295 is (uid_t)-1, which the kernel reads as \"no owner\": leave the field out instead)"]],
  ['route-default-ambiguous.yaml', ["8:11: spec.routes[0].to: \"default\" is ambiguous here: the route has no via or src and the device has both IPv4 and IPv6 addresses; write 0.0.0.0/0 or ::/0"]],
  ['route-duplicate.yaml', ["9:11: spec.routes[1].to: declares the same route as spec.routes[0] (198.51.100.0/24 in table 254 with metric 0): the kernel keeps one route per destination, table and metric"]],
  ['route-host-bits.yaml', ["8:11: spec.routes[0].to: \"198.51.100.7/24\" has host bits set: the network is 198.51.100.0/24 (a route goes to a network; an address of the device belongs in spec.addresses)"]],
  ['route-ipv6-mtu.yaml', ["9:12: spec.routes[0].mtu: is 1000, but an IPv6 route needs an MTU of at least 1280"]],
  ['route-metric-too-big.yaml', ["8:15: spec.routes[0].metric: must be from 0 to 4294967295, got 4294967296"]],
  ['route-missing-to.yaml', ["7:7: spec.routes[0].to: is required"]],
  ['route-onlink-without-via.yaml', ["8:7: spec.routes[0].onLink: is true but the route has no gateway (via); a route without via is already on-link"]],
  ['route-src-not-own.yaml', ["9:12: spec.routes[0].src: 192.0.2.2 is not one of this device's IPv4 addresses (192.0.2.1)"]],
  ['route-table-local.yaml', ["8:14: spec.routes[0].table: 255 is the local table, where the kernel keeps the routes to this host's own addresses; tunkeeper does not own routes there"]],
  ['route-table-zero.yaml', ["8:14: spec.routes[0].table: must be from 1 to 4294967295, got 0 (table 0 means \"unspecified\" and the kernel would use main: write 254 for main)"]],
  ['route-unknown-field.yaml', ["8:7: spec.routes[0].gateway: unknown field \"gateway\" (allowed here: to, via, onLink, metric, table, src, mtu)"]],
  ['route-via-family.yaml', ["9:12: spec.routes[0].via: 2001:db8:1::fe is IPv6 but the destination 198.51.100.0/24 is IPv4"]],
  ['route-via-unreachable.yaml', ["9:12: spec.routes[0].via: 192.0.2.254 is not inside any IPv4 address prefix of this device (192.0.2.1/30), so the kernel would refuse it as unreachable; add an address that covers it, or set onLink: true if the gateway is reachable on this link anyway"]],
  ['status-in-file.yaml', ["5:1: status: unknown field \"status\" (allowed: apiVersion, kind, metadata, spec)"]],
  ['txqueuelength-string.yaml', ["6:18: spec.txQueueLength: must be a whole number, got the string \"1000\" (remove the quotes)"]],
  ['unknown-field-typo.yaml', ["7:3: spec.adresses: unknown field \"adresses\" (did you mean \"addresses\"?)"]],
  ['up-yaml11-yes.yaml', ["6:7: spec.up: must be true or false, got the string \"yes\" (YAML 1.2 reads only true and false as booleans)"]],
  ['yaml-bad-indent.yaml', ["5:1: invalid YAML: All mapping items must start at the same column"]],
  ['yaml-duplicate-key.yaml', ["7:3: invalid YAML: Map keys must be unique"]],
  ['yaml-unclosed-quote.yaml', ["7:1: invalid YAML: Missing closing \"quote"]],
];

describe('bad declarations', () => {
  it('has an expectation for every fixture, and at least 30 of them', () => {
    const files = readdirSync(BAD).filter((f) => f.endsWith('.yaml')).sort();
    expect(CASES.map(([f]) => f).sort()).toEqual(files);
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES)('%s: reported at the offending text, and nothing is applied', async (name, expected) => {
    const file = join(BAD, name);
    const snapshot = await loadDeclarations([file]);
    const lines = snapshot.problems.map((p) => formatProblem(p).split(`${BAD}/`).join(''));
    expect(lines).toEqual(expected.map((l) => `${name}:${l}`));
    expect(snapshot.devices).toEqual([]);
    expect(snapshot.complete).toBe(false);
  });
});
