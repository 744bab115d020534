/**
 * The rtnetlink codec: pure TypeScript, no I/O. Decodes datagrams into plain typed objects and
 * writes objects back into request buffers, byte-exact for what the kernel sends.
 *
 * Modules, one job each:
 *   messages.ts   the message union (RtnlMessage), decodeMessages(datagram), writeMessage
 *   header.ts     struct nlmsghdr: readHeader, message alignment
 *   writer.ts     NetlinkWriter: appends messages/attributes into one growing Buffer
 *   attributes.ts table-driven, lossless attribute decoding/encoding (attrOrder, rawAttrs —
 *                 the module comment explains the choice), generic decodeAttrTree
 *   link.ts, address.ts, route.ts, neighbour.ts, rule.ts
 *                 one message family each: its interface, table, decode, write, dump request
 *   ack.ts        NLMSG_ERROR / NLMSG_DONE with extended-ack TLVs
 *   ip.ts         IP text as `ip -j` prints it (inet_ntop), strict parsing, MAC text
 *   walker.ts     AttrWalker: a cursor over an attribute list (no object per attribute)
 *   link-fields.ts, route-peek.ts
 *                 fast readers over the walker: a link's everyday fields (LinkFieldReader), a
 *                 route's key fields before deciding to decode it (RoutePeek)
 *   bytes.ts, fixed.ts, errors.ts  field readers, fixed-struct checks, the two error classes
 * Constants (RTM_*, IFLA_*, RTA_*, NLM_F_*, ...) live in ../constants.
 */
export { NetlinkDecodeError, NetlinkEncodeError, isNetlinkDecodeError } from './errors.js';
export { NetlinkWriter, messageWriter, type NlMsgHeaderInit, type MessageWriter, type PayloadWriter } from './writer.js';
export { readHeader, nextMessageOffset, forEachMessage, type NlMsgHeader, type MessageVisitor } from './header.js';
export { AttrWalker } from './walker.js';
export { LinkFieldReader, type TunFields } from './link-fields.js';
export { RoutePeek } from './route-peek.js';
export {
  MAX_NEST_DEPTH,
  decodeAttrTree,
  parseRawList,
  type AttrLayout,
  type AttrNode,
  type RawAttr,
} from './attributes.js';
export { formatIPv4, formatIPv6, formatIp, formatMac, parseIp, canonicalIp, writeIp, writeMac } from './ip.js';
export type { WithOptional } from './fixed.js';
export {
  decodeErrorMessage,
  decodeDoneMessage,
  writeErrorPayload,
  writeDonePayload,
  type ErrorMessage,
  type DoneMessage,
  type ExtendedAck,
} from './ack.js';
export {
  decodeLinkMessage,
  writeLinkMessage,
  writeLinkPayload,
  writeLinkDumpRequest,
  writeLinkGetRequest,
  type LinkMessage,
  type LinkMessageInit,
  type LinkInfo,
  type TunInfo,
  type LinkDumpFilter,
} from './link.js';
export {
  decodeAddressMessage,
  writeAddressMessage,
  writeAddressPayload,
  writeAddressDumpRequest,
  addressFlags,
  type AddressMessage,
  type AddressMessageInit,
  type AddressCacheInfo,
  type AddressDumpFilter,
} from './address.js';
export {
  decodeRouteMessage,
  writeRouteMessage,
  writeRoutePayload,
  writeRouteDumpRequest,
  writeRouteGetRequest,
  routeTable,
  type RouteMessage,
  type RouteMessageInit,
  type RouteMetrics,
  type RouteNexthop,
  type RouteVia,
  type RouteCacheInfo,
  type RouteDumpFilter,
  type RouteGetQuery,
} from './route.js';
export {
  decodeNeighbourMessage,
  writeNeighbourMessage,
  writeNeighbourPayload,
  writeNeighbourDumpRequest,
  type NeighbourMessage,
  type NeighbourMessageInit,
  type NeighbourCacheInfo,
  type NeighbourDumpFilter,
} from './neighbour.js';
export {
  decodeRuleMessage,
  writeRuleMessage,
  writeRulePayload,
  writeRuleDumpRequest,
  ruleTable,
  type RuleMessage,
  type RuleMessageInit,
  type RuleRange,
} from './rule.js';
export {
  decodeMessages,
  decodeMessageBody,
  writeMessage,
  encodeMessage,
  encodeMessages,
  messageKind,
  type MessageKind,
  type MessageBodies,
  type RtnlMessage,
  type RtnlMessageInit,
} from './messages.js';
