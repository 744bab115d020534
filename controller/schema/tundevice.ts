/**
 * The TunDevice resource (tunkeeper.io/v1alpha1): the one schema. It validates YAML files (with
 * controller/schema/semantics.ts for what JSON Schema cannot say), and the CRD's openAPIV3Schema is
 * generated from it (controller/schema/crd.ts), CEL rules included.
 *
 * Fields with a default are optional here and get their value from `default`: the API server
 * applies the same defaults (structural defaulting), and Value.Default applies them to files.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DEFAULT_ROLLOUT } from '../model/desired.js';
import { FORMAT, HINT, type FieldFormat } from './keywords.js';

export const GROUP = 'tunkeeper.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const TUN_DEVICE_KIND = 'TunDevice';

export const UINT32_MAX = 4294967295;
/** The main routing table (RT_TABLE_MAIN). */
export const MAIN_TABLE = 254;
/** RT_TABLE_LOCAL: the kernel's own table of local and broadcast routes. */
export const LOCAL_TABLE = 255;
export const MIN_MTU = 68;
export const MAX_MTU = 65535;
/** IPv6 needs links of at least 1280 bytes (RFC 8200 section 5); below it the kernel disables IPv6 on the device. */
export const IPV6_MIN_MTU = 1280;
export const MAX_ADDRESSES = 1024;
/** Generous on purpose: one device may carry a large routing table (65k routes, one flow mapping per line, are ~3 MiB of YAML). */
export const MAX_ROUTES = 65536;
/**
 * Probes per device. Every probe runs on every selected node after every change, retried until it
 * passes or the timeout ends, and holds the node's rollout slot meanwhile: a few well-chosen ones
 * (a route lookup and an echo per family and peer) say whether the device works; hundreds would only
 * slow every change down. The bound also keeps the CRD's CEL rules over probes × addresses within
 * the API server's cost budget.
 */
export const MAX_PROBES = 16;
/** An hour: a probe that has not passed by then will not, and the node's rollout slot is held meanwhile. */
export const MAX_PROBE_TIMEOUT_SECONDS = 3600;
/** "1%" to "100%", no leading zeros: the spelling the API server and the file validator both accept. */
export const PERCENT_PATTERN = '^(100|[1-9][0-9]?)%$';

/** A CEL rule for the CRD (x-kubernetes-validations). Each one has a twin in semantics.ts. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
}
const cel = (rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });
const format = (f: FieldFormat) => ({ [FORMAT]: f });

// Patterns give the API server the shape, and CEL's isIP/isCIDR (Kubernetes' IP library) refuse
// what is not an address at all, so `kubectl apply` says so at once; semantics.ts checks the values
// (ranges, host bits, families, reachability) and explains. Patterns are RE2- and ECMAScript-compatible.
const IP_PATTERN = '^[0-9A-Fa-f:.]+$';
const CIDR_PATTERN = '^[0-9A-Fa-f:.]+/[0-9]{1,3}$';
// "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 characters; "/128" adds 4.
const IP_MAX_LENGTH = 45;
const CIDR_MAX_LENGTH = 49;

export const IfNameSchema = Type.String({
  description:
    "The interface name: 1 to 15 bytes, no '/', ':', '%', whitespace or invisible control and format characters, not '.' or '..'. It must also start with one of the agent's allowed prefixes (tk-, tun-, tap- by default). Defaults to metadata.name.",
  minLength: 1,
  maxLength: 15,
  // DEL, the C1 controls and U+00A0 (whose UTF-8 holds byte 0xA0, a blank to the kernel), then the
  // invisible format characters that make a name print as another one (soft hyphen, bidi marks and
  // overrides, zero-width characters, BOM). They are written as the characters themselves, the one
  // spelling RE2 and ECMAScript both read; semantics.ts refuses every other control and format character.
  pattern: '^[^/:%\\x00-\\x20\\x7f-\\xa0\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]+$',
  ...format('ifname'),
  ...cel([
    { rule: 'size(bytes(self)) <= 15', message: 'ifname is at most 15 bytes in UTF-8 (the kernel\'s IFNAMSIZ is 16 with the NUL)' },
    { rule: "self != '.' && self != '..'", message: "ifname cannot be '.' or '..'" },
  ]),
});

const MtuSchema = (description: string, extra: object = {}) =>
  Type.Integer({
    description,
    minimum: MIN_MTU,
    maximum: MAX_MTU,
    [HINT]: `the kernel accepts ${MIN_MTU} to ${MAX_MTU} on a TUN/TAP device; IPv6 needs at least ${IPV6_MIN_MTU}`,
    ...extra,
  });

const IdSchema = (what: string, ioctl: string) =>
  Type.Integer({
    description: `The ${what} allowed to attach to the device without CAP_NET_ADMIN (${ioctl}).`,
    minimum: 0,
    maximum: UINT32_MAX - 1,
    [HINT]: `4294967295 is (${what === 'uid' ? 'uid_t' : 'gid_t'})-1, which the kernel reads as "no ${what === 'uid' ? 'owner' : 'group'}": leave the field out instead`,
  });

export const RouteSchema = Type.Object(
  {
    to: Type.String({
      description: 'Destination: a CIDR with no host bits set (198.51.100.0/24, 2001:db8:2::/48), or "default".',
      maxLength: CIDR_MAX_LENGTH,
      pattern: `^(default|[0-9A-Fa-f:.]+/[0-9]{1,3})$`,
      ...format('route-to'),
      ...cel([{ rule: "self == 'default' || isCIDR(self)", message: 'to must be a CIDR such as 198.51.100.0/24 or 2001:db8:2::/48, or "default"' }]),
    }),
    via: Type.Optional(
      Type.String({
        description:
          'Gateway address, of the same family as `to`. It must lie inside a prefix of one of the device\'s addresses (or be an IPv6 link-local address), unless onLink is true.',
        maxLength: IP_MAX_LENGTH,
        pattern: IP_PATTERN,
        ...format('ip'),
        ...cel([{ rule: 'isIP(self)', message: 'via must be an IP address such as 192.0.2.254 or 2001:db8:1::fe' }]),
      }),
    ),
    // onLink (RTNH_F_ONLINK) tells the kernel to take the gateway as directly reachable on this
    // link even though no address of the device covers it: the usual case on point-to-point
    // tunnels whose peer has an address from another subnet. Without it the kernel refuses such a
    // gateway (ENETUNREACH), which is why the schema checks reachability unless onLink is set.
    onLink: Type.Optional(
      Type.Boolean({
        description: 'Treat the gateway as directly reachable on this device even if no address of the device covers it (RTNH_F_ONLINK). Requires via.',
        default: false,
      }),
    ),
    metric: Type.Optional(
      Type.Integer({ description: 'Route priority (RTA_PRIORITY); lower wins. Defaults to the kernel\'s (0 for IPv4, 1024 for IPv6).', minimum: 0, maximum: UINT32_MAX }),
    ),
    // Table 0 is RT_TABLE_UNSPEC: the kernel silently puts such a route into main, so a route
    // declared in table 0 would be observed in 254 and never match. 253 (RT_TABLE_DEFAULT) is an
    // ordinary table consulted by the default rule at priority 32767, so it is allowed. 255
    // (RT_TABLE_LOCAL) holds the kernel's own local and broadcast routes; a route owned there
    // would take part in deciding what is a local address of this host, so it is refused.
    table: Type.Optional(
      Type.Integer({
        description: 'Routing table id, 1 to 4294967295 except 255 (local). 254 is main, 253 is default.',
        minimum: 1,
        maximum: UINT32_MAX,
        default: MAIN_TABLE,
        [HINT]: 'table 0 means "unspecified" and the kernel would use main: write 254 for main',
        ...cel([
          {
            rule: `self != ${LOCAL_TABLE}`,
            message: 'table 255 (local) holds the kernel\'s own local and broadcast routes; tunkeeper does not own routes there',
          },
        ]),
      }),
    ),
    src: Type.Optional(
      Type.String({
        description: 'Preferred source address (RTA_PREFSRC); must be one of the device\'s addresses, of the same family as `to`.',
        maxLength: IP_MAX_LENGTH,
        pattern: IP_PATTERN,
        ...format('ip'),
        ...cel([{ rule: 'isIP(self)', message: 'src must be an IP address such as 192.0.2.1 or 2001:db8:1::1' }]),
      }),
    ),
    mtu: Type.Optional(MtuSchema('Path MTU for this route (RTAX_MTU); at least 1280 for IPv6.')),
  },
  {
    additionalProperties: false,
    ...cel([
      {
        rule: "!has(self.via) || self.to == 'default' || self.via.contains(':') == self.to.contains(':')",
        message: 'via must be an address of the same family as to',
        fieldPath: '.via',
      },
      {
        rule: "!has(self.src) || self.to == 'default' || self.src.contains(':') == self.to.contains(':')",
        message: 'src must be an address of the same family as to',
        fieldPath: '.src',
      },
      {
        rule: "!has(self.mtu) || !self.to.contains(':') || self.mtu >= 1280",
        message: 'an IPv6 route needs an mtu of at least 1280',
        fieldPath: '.mtu',
      },
      {
        rule: '!has(self.onLink) || !self.onLink || has(self.via)',
        message: 'onLink needs a gateway (via)',
        fieldPath: '.onLink',
      },
    ]),
  },
);

const ProbeTargetSchema = (kind: 'route' | 'ping', description: string) =>
  Type.Object(
    {
      to: Type.String({
        description,
        maxLength: IP_MAX_LENGTH,
        pattern: IP_PATTERN,
        ...format('ip'),
        ...cel([{ rule: 'isIP(self)', message: `${kind}.to must be an IP address such as 198.51.100.7 or 2001:db8:2::7` }]),
      }),
    },
    { additionalProperties: false },
  );

// A probe's address must be a unicast address that is not the device's own, of a family the device
// has an address of, inside one of its route destinations or address prefixes: semantics.ts says
// why for each. CEL carries the rules that fit the API server's cost budget (see the spec's rules).
export const ProbeSchema = Type.Object(
  {
    route: Type.Optional(
      ProbeTargetSchema(
        'route',
        "An address the kernel's own route lookup (RTM_GETROUTE, as `ip route get`) must send out through this device. Catches more specific foreign routes and policy rules that shadow the declared routes; needs no peer.",
      ),
    ),
    ping: Type.Optional(
      ProbeTargetSchema('ping', 'An address that must answer an ICMP or ICMPv6 echo sent through this device (usually the peer at the far end of the tunnel).'),
    ),
  },
  {
    additionalProperties: false,
    description: 'One check that the device works, run on the node after each change: exactly one of route or ping.',
    ...cel([{ rule: 'has(self.route) != has(self.ping)', message: 'a probe is exactly one of route or ping' }]),
  },
);

export const RolloutSchema = Type.Object(
  {
    // int-or-string, as Deployments spell it. Its type is structural (integer or string); the
    // values (at least 1, a percentage from 1% to 100%) are CEL here and semantics.ts for files.
    maxUnavailable: Type.Optional(
      Type.Union([Type.Integer(), Type.String()], {
        description:
          'How many of the selected nodes may be moving to a new generation at once: a number of nodes (at least 1) or a percentage of the selected nodes from "1%" to "100%" (rounded up, as a DaemonSet\'s is, so at least one node). Default "100%": every node at once. Kubernetes only: a file declares devices for the one node that reads it, so there it is accepted and has no effect.',
        default: DEFAULT_ROLLOUT.maxUnavailable,
        'x-kubernetes-int-or-string': true,
        ...cel([
          {
            rule: `type(self) != string || self.matches('${PERCENT_PATTERN}')`,
            message: 'maxUnavailable must be a number of nodes or a percentage from "1%" to "100%", such as 1 or "25%"',
          },
          {
            rule: 'type(self) == string || self >= 1',
            message: 'maxUnavailable must be at least 1: with 0 no node could ever move to a new generation',
          },
        ]),
      }),
    ),
    probeTimeoutSeconds: Type.Optional(
      Type.Integer({
        description: `How long a node's probes have to pass after a change, retried meanwhile: 1 to ${MAX_PROBE_TIMEOUT_SECONDS} seconds, default ${DEFAULT_ROLLOUT.probeTimeoutSeconds}. A probe that has not passed by then has failed, and the node rolls back.`,
        minimum: 1,
        maximum: MAX_PROBE_TIMEOUT_SECONDS,
        default: DEFAULT_ROLLOUT.probeTimeoutSeconds,
        [HINT]: 'a probe needs time to run: with 0 every probe would fail at once and every change would be rolled back',
        ...cel([
          {
            rule: 'self >= 1',
            message: 'probeTimeoutSeconds must be at least 1: a probe needs time to run, and with 0 every probe would fail at once and every change would be rolled back',
          },
        ]),
      }),
    ),
  },
  { additionalProperties: false, description: 'How a new generation is brought to the nodes: a few at a time, each checked by its probes.' },
);

export const NO_ADDRESS_FOR_PROBES =
  'probes need an address on the device: an echo would have no source address to be answered at, and a route lookup would be answered for another device\'s address';

const LabelMap = Type.Record(Type.String(), Type.String());

export const LabelSelectorSchema = Type.Object(
  {
    matchLabels: Type.Optional(LabelMap),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String({ minLength: 1 }),
            operator: Type.Union([Type.Literal('In'), Type.Literal('NotIn'), Type.Literal('Exists'), Type.Literal('DoesNotExist')]),
            values: Type.Optional(Type.Array(Type.String())),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'A label selector over Node labels: which nodes get this device. Kubernetes only; empty or absent means every node.',
    'x-kubernetes-map-type': 'atomic',
  },
);

export const TunDeviceSpecSchema = Type.Object(
  {
    ifname: Type.Optional(IfNameSchema),
    mode: Type.Optional(
      Type.Union([Type.Literal('tun'), Type.Literal('tap')], {
        description: 'tun: layer 3, IP packets. tap: layer 2, Ethernet frames.',
        default: 'tun',
      }),
    ),
    mtu: Type.Optional(MtuSchema('Device MTU, 68 to 65535; at least 1280 when the device has an IPv6 address.', { default: 1500 })),
    up: Type.Optional(Type.Boolean({ description: 'Whether the link is administratively up.', default: true })),
    txQueueLength: Type.Optional(
      Type.Integer({ description: 'Transmit queue length (IFLA_TXQLEN); the kernel default for TUN/TAP is 500.', minimum: 0, maximum: UINT32_MAX }),
    ),
    macAddress: Type.Optional(
      Type.String({
        description: 'Unicast Ethernet address of a tap device, e.g. 02:00:00:00:00:01. Not for tun devices, which have no link-layer address.',
        pattern: '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$',
        ...format('mac'),
      }),
    ),
    owner: Type.Optional(IdSchema('uid', 'TUNSETOWNER')),
    group: Type.Optional(IdSchema('gid', 'TUNSETGROUP')),
    multiQueue: Type.Optional(Type.Boolean({ description: 'IFF_MULTI_QUEUE. Fixed at creation: changing it recreates the device.', default: false })),
    vnetHdr: Type.Optional(Type.Boolean({ description: 'IFF_VNET_HDR. Fixed at creation: changing it recreates the device.', default: false })),
    packetInfo: Type.Optional(
      Type.Boolean({ description: 'Prefix packets with struct tun_pi (no IFF_NO_PI). Fixed at creation: changing it recreates the device.', default: false }),
    ),
    addresses: Type.Optional(
      Type.Array(
        Type.String({
          description: 'An address with its prefix length, e.g. 192.0.2.1/24 or 2001:db8:1::1/64.',
          maxLength: CIDR_MAX_LENGTH,
          pattern: CIDR_PATTERN,
          ...format('cidr'),
          ...cel([{ rule: 'isCIDR(self)', message: 'an address must be an IP address with its prefix length, such as 192.0.2.1/24 or 2001:db8:1::1/64' }]),
        }),
        {
          description: 'The addresses of the device: authoritative (others are removed), except kernel-generated IPv6 link-local ones.',
          maxItems: MAX_ADDRESSES,
        },
      ),
    ),
    routes: Type.Optional(Type.Array(RouteSchema, { description: 'Routes through the device, owned by tunkeeper (its route protocol).', maxItems: MAX_ROUTES })),
    nodeSelector: Type.Optional(LabelSelectorSchema),
    probes: Type.Optional(
      Type.Array(ProbeSchema, {
        description: `Checks run on each node after each change; a node whose probes fail puts its last good spec back. At most ${MAX_PROBES}.`,
        maxItems: MAX_PROBES,
        [HINT]: 'every probe runs on every node after every change: a route and a ping probe per family and peer say whether the device works',
      }),
    ),
    rollout: Type.Optional(RolloutSchema),
  },
  {
    additionalProperties: false,
    description: 'The desired TUN/TAP device.',
    default: {},
    ...cel([
      {
        rule: "!has(self.macAddress) || (has(self.mode) && self.mode == 'tap')",
        message: 'macAddress is only for tap devices (a tun device has no link-layer address)',
        fieldPath: '.macAddress',
      },
      {
        rule: "!has(self.addresses) || !self.addresses.exists(a, a.contains(':')) || !has(self.mtu) || self.mtu >= 1280",
        message: 'a device with an IPv6 address needs an mtu of at least 1280',
        fieldPath: '.mtu',
      },
      // Probes. Whether a probe lies inside one of the device's routes or address prefixes is not
      // here: written with Kubernetes' cidr()/ip() library, the rule's estimated cost (16 probes ×
      // 65536 routes) is several times the API server's per-rule budget, and the server refuses the
      // CRD (test/kube/crds.test.ts keeps that claim true). The agent's validator (semantics.ts)
      // refuses such an object with the reason, and the last valid spec stays in force meanwhile.
      // Unicast, not the device's own address and declared once are likewise the agent's.
      {
        rule: '!has(self.probes) || size(self.probes) == 0 || (has(self.addresses) && size(self.addresses) > 0)',
        message: NO_ADDRESS_FOR_PROBES,
        fieldPath: '.probes',
      },
      {
        rule:
          '!has(self.probes) || !has(self.addresses) || size(self.addresses) == 0 || self.probes.all(p, ' +
          "(!has(p.route) || self.addresses.exists(a, a.contains(':') == p.route.to.contains(':'))) && " +
          "(!has(p.ping) || self.addresses.exists(a, a.contains(':') == p.ping.to.contains(':'))))",
        message: 'each probe needs an address of its family (IPv4 or IPv6) on the device, to send from and be answered at',
        fieldPath: '.probes',
      },
    ]),
  },
);

export const ObjectMetaSchema = Type.Object(
  {
    name: Type.String({ maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', ...format('dns-subdomain') }),
    labels: Type.Optional(LabelMap),
    annotations: Type.Optional(LabelMap),
  },
  { additionalProperties: false },
);

/** A TunDevice document as written in a file. */
export const TunDeviceSchema = Type.Object(
  {
    apiVersion: Type.String(),
    kind: Type.String(),
    metadata: ObjectMetaSchema,
    spec: Type.Optional(TunDeviceSpecSchema),
  },
  { additionalProperties: false, description: 'A TUN/TAP device that tunkeeper creates and keeps, with its addresses and routes.' },
);

export type TunDeviceSpec = Static<typeof TunDeviceSpecSchema>;
export type TunDeviceRoute = Static<typeof RouteSchema>;
export type TunDeviceProbe = Static<typeof ProbeSchema>;
export type TunDeviceRollout = Static<typeof RolloutSchema>;
export type LabelSelector = Static<typeof LabelSelectorSchema>;
export type TunDeviceManifest = Static<typeof TunDeviceSchema>;
