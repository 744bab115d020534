/**
 * The hostile declaration files (test/fixtures/hostile/) and what `tunkeeper validate` must say
 * about each: the place (line:col of the offending text) and a phrase of the message. Policy
 * cases (lo, eth0, default routes) are refused by validate under the default policy, and by the
 * running agent at plan time; everything else is refused by the schema.
 */
import { fileURLToPath } from 'node:url';

/** test/fixtures/hostile in the source tree (this module runs from dist/test/reliability/helpers/). */
export const HOSTILE_DIR = fileURLToPath(new URL('../../../../test/fixtures/hostile/', import.meta.url)).replace(/\/$/, '');
/** Two files that declare the same ifname: each is reported, neither applied. */
export const DUPLICATE_DIR = `${HOSTILE_DIR}/duplicate-across-files`;

/** [file (relative to HOSTILE_DIR), 'line:col', phrase the message contains]. */
export type Expectation = [string, string, string];

export const HOSTILE_FILES: Expectation[] = [
  // YAML syntax
  ['syntax-tab-indent.yaml', '6:1', 'Tabs are not allowed as indentation'],
  ['syntax-unclosed-flow.yaml', '7:3', 'end with a ]'],
  ['syntax-undefined-alias.yaml', '6:8', 'alias *nowhere has no anchor &nowhere before it'],
  ['syntax-duplicate-metadata.yaml', '5:1', 'Map keys must be unique'],
  ['syntax-nul-bytes.yaml', '7:1', 'invalid YAML'],
  ['syntax-unknown-directive.yaml', '1:1', 'Unknown directive %TUNKEEPER'],
  ['syntax-merge-key.yaml', '8:3', 'unknown field "<<"'],
  ['syntax-js-tag.yaml', '6:8', 'Unresolved tag: tag:yaml.org,2002:js/function'],
  ['syntax-empty-file.yaml', '1:1', 'file is empty'],
  ['syntax-crlf-bad-value.yaml', '7:8', 'must be from 68 to 65535, got 99999'],
  ['syntax-json-flow.yaml', '1:111', 'must be a whole number, got the string "1400"'],
  // wrong types
  ['types-spec-list.yaml', '6:3', 'spec: must be a mapping, got a list'],
  ['types-metadata-string.yaml', '3:11', 'metadata: must be a mapping'],
  ['types-addresses-map.yaml', '7:5', 'spec.addresses: must be a list, got a mapping'],
  ['types-address-object-with-dev.yaml', '7:7', 'spec.addresses[0]: must be a string, got a mapping'],
  ['types-routes-string.yaml', '6:11', 'spec.routes: must be a list'],
  ['types-up-quoted.yaml', '6:7', 'spec.up: must be true or false'],
  ['types-up-on.yaml', '6:7', 'YAML 1.2 reads only true and false as booleans'],
  ['types-mtu-infinity.yaml', '6:8', 'got the number Infinity'],
  ['types-mtu-null.yaml', '6:8', 'got nothing (null)'],
  ['types-name-number.yaml', '4:9', 'metadata.name: must be a string'],
  ['types-owner-bool.yaml', '6:10', 'spec.owner: must be a whole number, got true'],
  // hostile shapes
  ['shape-laughs-in-addresses.yaml', '1:1', 'billion laughs'],
  ['shape-alias-fanout.yaml', '1:1', 'more than 100 expansions'],
  ['shape-deep-flow.yaml', '6:70', 'nesting is deeper than 64 levels'],
  ['shape-deep-block.yaml', '7:5', 'nesting is deeper than 64 levels'],
  ['shape-deep-mappings.yaml', '69:129', 'nesting is deeper than 64 levels'],
  ['shape-long-ifname.yaml', '6:11', 'the kernel allows at most 15 bytes'],
  // interface names
  ['ifname-lo.yaml', '6:11', '"lo" is one of the host\'s own devices'],
  ['ifname-eth0.yaml', '6:11', 'names starting with "eth" belong to the host'],
  ['ifname-docker0.yaml', '6:11', 'names starting with "docker" belong to the host'],
  ['ifname-veth.yaml', '6:11', 'names starting with "veth" belong to the host'],
  ['ifname-outside-prefixes.yaml', '6:11', '"wg0" does not start with an allowed prefix (tk-, tun-, tap-)'],
  ['ifname-from-name-eth1.yaml', '4:9', 'metadata.name: the agent refuses this device'],
  ['ifname-dot.yaml', '6:11', 'is not allowed as an interface name'],
  ['ifname-slash-traversal.yaml', '6:11', "contains '/'"],
  ['ifname-colon-alias.yaml', '6:11', "contains ':'"],
  ['ifname-tab.yaml', '6:11', 'contains whitespace'],
  ['ifname-newline.yaml', '6:11', 'contains whitespace'],
  ['ifname-16-bytes.yaml', '6:11', 'is 16 characters; the kernel allows at most 15 bytes'],
  ['ifname-utf8-too-long.yaml', '6:11', 'is 19 bytes in UTF-8'],
  ['ifname-nul.yaml', '6:11', 'contains a control character'],
  ['ifname-empty.yaml', '6:11', 'cannot be empty'],
  ['ifname-percent.yaml', '6:11', 'TUNSETIFF treats as a template'],
  // policy, ownership and the kernel's rules
  ['route-default-v4.yaml', '8:11', 'is a default route, which the agent may not own'],
  ['route-default-keyword.yaml', '8:11', 'is a default route, which the agent may not own'],
  ['route-default-v6.yaml', '8:11', 'is a default route, which the agent may not own'],
  ['route-dev-field.yaml', '8:7', 'unknown field "dev"'],
  ['route-oif-field.yaml', '8:7', 'unknown field "oif"'],
  ['route-src-foreign.yaml', '9:12', "203.0.113.1 is not one of this device's IPv4 addresses"],
  ['route-gateway-unreachable.yaml', '9:12', 'so the kernel would refuse it as unreachable'],
  ['route-table-too-big.yaml', '8:14', 'must be from 1 to 4294967295, got 4294967296'],
  ['route-table-negative.yaml', '8:14', 'must be from 1 to 4294967295, got -1'],
  ['route-metric-negative.yaml', '8:15', 'must be from 0 to 4294967295, got -5'],
  ['route-mtu-huge.yaml', '8:12', 'must be from 68 to 65535, got 70000'],
  ['mac-on-tun.yaml', '7:3', 'is only for tap devices'],
  ['mtu-too-big.yaml', '6:8', 'got 65536'],
  ['mtu-zero.yaml', '6:8', 'got 0'],
  ['txqueuelength-too-big.yaml', '6:18', 'got 4294967296'],
  ['mode-uppercase.yaml', '6:9', 'must be one of "tun", "tap", got "TAP"'],
  ['address-loopback.yaml', '6:15', 'it is a loopback address'],
  ['address-any.yaml', '6:15', 'it is the unspecified address'],
  ['address-broadcast.yaml', '6:15', 'it is the limited broadcast address'],
  ['unknown-field-spec.yaml', '7:3', 'unknown field "privileged"'],
  ['unknown-field-top.yaml', '7:1', 'unknown field "hostNetwork"'],
  ['kind-pod.yaml', '2:7', '"Pod" is not a kind tunkeeper reads'],
  ['kind-lowercase.yaml', '2:7', '"tundevice" is not a kind tunkeeper reads'],
  ['apiversion-v1.yaml', '1:13', '"tunkeeper.io/v1" is not supported'],
  ['node-selector-in-file.yaml', '6:3', 'applies only to TunDevice objects in Kubernetes'],
  // probes and rollout
  ['probe-outside-routes.yaml', '10:19', '203.0.113.9 is outside every route and address prefix of this device (198.51.100.0/24, 192.0.2.0/24)'],
  ['probe-no-addresses.yaml', '8:3', 'spec.probes: cannot pass on a device without addresses'],
  ['probe-family-without-address.yaml', '10:19', '2001:db8:2::7 is IPv6, but the device has no IPv6 address'],
  ['probe-own-address.yaml', '8:18', '192.0.2.1 is an address of this device itself (spec.addresses[0])'],
  ['probe-multicast.yaml', '8:18', '"224.0.0.1" cannot be probed: it is a multicast address'],
  ['probe-duplicate.yaml', '9:19', 'spec.probes[1].route.to: declares the same probe as spec.probes[0] (route 192.0.2.7)'],
  ['probe-route-and-ping.yaml', '8:7', 'spec.probes[0]: has both route and ping'],
  ['probe-neither.yaml', '8:7', 'spec.probes[0]: needs one of route or ping'],
  ['probe-timeout-zero.yaml', '10:26', 'spec.rollout.probeTimeoutSeconds: must be from 1 to 3600, got 0 (a probe needs time to run'],
  ['rollout-max-unavailable-zero.yaml', '7:21', 'spec.rollout.maxUnavailable: is 0, but at least 1 node must be allowed to move'],
  ['rollout-max-unavailable-zero-percent.yaml', '7:21', 'spec.rollout.maxUnavailable: is "0%", but at least 1% must be allowed to move'],
  ['duplicate-name-in-file.yaml', '4:9', 'TunDevice "tk-twice" is also declared at'],
  ['duplicate-name-in-file.yaml', '11:9', 'TunDevice "tk-twice" is also declared at'],
  ['second-document-bad.yaml', '13:8', 'got -1'],
  ['duplicate-across-files/a.yaml', '6:11', 'interface name "tk-dup0" is also declared at'],
  ['duplicate-across-files/b.yaml', '6:11', 'interface name "tk-dup0" is also declared at'],
];

/** Files made at test time: too big to keep in the repository, or counted in thousands. */
export interface GeneratedCase {
  file: string;
  text: () => string;
  at: string;
  phrase: string;
}

const header = (name: string) => `apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata:\n  name: ${name}\nspec:\n`;

export const GENERATED: GeneratedCase[] = [
  {
    file: 'gen-over-4mib.yaml',
    text: () => `${header('tk-huge')}  mtu: 1400\n${`# ${'x'.repeat(1000)}\n`.repeat(4200)}`,
    at: '1:1',
    phrase: 'file is larger than the 4194304 bytes a declaration file may have',
  },
  {
    file: 'gen-10001-documents.yaml',
    text: () => Array.from({ length: 10001 }, (_, i) => `--- {a: ${i}}\n`).join(''),
    at: '10001:1',
    phrase: 'more than 10000 documents in one file; split it',
  },
  {
    file: 'gen-300-problems.yaml',
    text: () => Array.from({ length: 300 }, (_, i) => `${header(`tk-p${i}`)}  mtu: 1\n`).join('---\n'),
    at: '6:8',
    phrase: 'must be from 68 to 65535, got 1',
  },
  {
    file: 'gen-65537-routes.yaml',
    text: () =>
      `${header('tk-routes')}  addresses: [198.18.0.1/15]\n  routes:\n` +
      Array.from({ length: 65537 }, (_, i) => `    - to: 198.18.${i >> 8}.${i & 255}/32\n`).join(''),
    at: '8:5',
    phrase: 'spec.routes: has 65537 entries; at most 65536 are allowed',
  },
  {
    file: 'gen-10000-probes.yaml',
    text: () =>
      `${header('tk-probes')}  addresses: [198.18.0.1/15]\n  probes:\n` +
      Array.from({ length: 10000 }, (_, i) => `    - route: {to: 198.18.${i >> 8}.${i & 255}}\n`).join(''),
    at: '8:5',
    phrase: 'spec.probes: has 10000 entries; at most 16 are allowed (every probe runs on every node after every change',
  },
  {
    file: 'gen-50000-brackets.yaml',
    text: () => `${header('tk-deep')}  mtu: ${'['.repeat(50000)}${']'.repeat(50000)}\n`,
    at: '6:70',
    phrase: 'nesting is deeper than 64 levels',
  },
  {
    file: 'gen-10000-dashes.yaml',
    text: () => `${header('tk-dashes')}  routes:\n    ${'- '.repeat(10000)}x\n`,
    at: '7:5',
    phrase: 'nesting is deeper than 64 levels',
  },
];
