/** Policy routing rules: RTM_NEWRULE / RTM_DELRULE / RTM_GETRULE (struct fib_rule_hdr + FRA_*). */
import { NetlinkDecodeError } from './errors.js';
import {
  attrSpec,
  decodeAttrs,
  encodeAttrs,
  fIp,
  fString,
  fU16Struct,
  fU32,
  fU32Struct,
  fU64BE,
  fU8,
  type AttrLayout,
} from './attributes.js';
import { rdU32 } from './bytes.js';
import { u32Field, u8Field, type WithOptional } from './fixed.js';
import { messageWriter, type NetlinkWriter, type MessageWriter } from './writer.js';
import { NLM_F_DUMP, NLM_F_REQUEST } from '../constants/netlink.js';
import { AF_UNSPEC, RTM_GETRULE } from '../constants/rtnetlink.js';
import * as F from '../constants/rule.js';

export interface RuleRange {
  start: number;
  end: number;
}

/** A routing policy rule as RTM_NEWRULE describes it. */
export interface RuleMessage extends AttrLayout {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  /** The 8-bit table field; use ruleTable() for the effective id (FRA_TABLE when present). */
  headerTable: number;
  /** FR_ACT_*: what a match does (to table, goto, blackhole, ...). */
  action: number;
  /** FIB_RULE_* flags. */
  flags: number;

  dst?: string;
  src?: string;
  iifname?: string;
  oifname?: string;
  goto?: number;
  /** FRA_PRIORITY: the rule's preference (lower runs first). */
  priority?: number;
  fwmark?: number;
  fwmask?: number;
  flow?: number;
  /** FRA_TUN_ID (network byte order u64). */
  tunId?: bigint;
  suppressIfgroup?: number;
  suppressPrefixlen?: number;
  /** FRA_TABLE: the full 32-bit table id. */
  table?: number;
  l3mdev?: number;
  uidRange?: RuleRange;
  /** FRA_PROTOCOL: who installed the rule. */
  protocol?: number;
  ipProto?: number;
  sportRange?: RuleRange;
  dportRange?: RuleRange;
}

export type RuleMessageInit = WithOptional<RuleMessage, 'family' | 'dstLen' | 'srcLen' | 'tos' | 'headerTable' | 'action' | 'flags'>;

/** The effective table id of a rule: FRA_TABLE when present, else the header's. */
export function ruleTable(r: Pick<RuleMessage, 'headerTable' | 'table'>): number {
  return r.table ?? r.headerTable;
}

// Table order follows the kernel's fib_nl_fill_rule (6.x): common attributes, then the family's
// own (addresses, flow) last.
export const RULE_ATTRS = attrSpec('rule', [
  fU32(F.FRA_TABLE, 'table'),
  fU32(F.FRA_SUPPRESS_PREFIXLEN, 'suppressPrefixlen'),
  fU8(F.FRA_PROTOCOL, 'protocol'),
  fString(F.FRA_IIFNAME, 'iifname'),
  fString(F.FRA_OIFNAME, 'oifname'),
  fU32(F.FRA_PRIORITY, 'priority'),
  fU32(F.FRA_FWMARK, 'fwmark'),
  fU32(F.FRA_FWMASK, 'fwmask'),
  fU32(F.FRA_GOTO, 'goto'),
  fU64BE(F.FRA_TUN_ID, 'tunId'),
  fU32(F.FRA_SUPPRESS_IFGROUP, 'suppressIfgroup'),
  fU8(F.FRA_L3MDEV, 'l3mdev'),
  fU32Struct(F.FRA_UID_RANGE, 'uidRange', ['start', 'end']),
  fU16Struct(F.FRA_SPORT_RANGE, 'sportRange', ['start', 'end']),
  fU16Struct(F.FRA_DPORT_RANGE, 'dportRange', ['start', 'end']),
  fU8(F.FRA_IP_PROTO, 'ipProto'),
  fIp(F.FRA_DST, 'dst'),
  fIp(F.FRA_SRC, 'src'),
  fU32(F.FRA_FLOW, 'flow'),
]);

/** Decodes the payload buf[start, end) of a rule message. */
export function decodeRuleMessage(buf: Buffer, start: number, end: number): RuleMessage {
  if (end - start < F.FIB_RULE_HDR_LEN) {
    throw new NetlinkDecodeError(`rule message payload of ${end - start} bytes, shorter than struct fib_rule_hdr (12)`, start);
  }
  const msg: RuleMessage = {
    family: buf[start]!,
    dstLen: buf[start + 1]!,
    srcLen: buf[start + 2]!,
    tos: buf[start + 3]!,
    headerTable: buf[start + 4]!,
    action: buf[start + 7]!,
    flags: rdU32(buf, start + 8),
  };
  decodeAttrs(buf, start + F.FIB_RULE_HDR_LEN, end, RULE_ATTRS, msg as unknown as Record<string, unknown>, 0);
  return msg;
}

/** Writes struct fib_rule_hdr and the attributes of a rule (inside a message the caller began). */
export function writeRulePayload(w: NetlinkWriter, r: RuleMessageInit): void {
  w.reserve(F.FIB_RULE_HDR_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = u8Field(r.family, 'rule.family');
  b[p + 1] = u8Field(r.dstLen, 'rule.dstLen');
  b[p + 2] = u8Field(r.srcLen, 'rule.srcLen');
  b[p + 3] = u8Field(r.tos, 'rule.tos');
  b[p + 4] = u8Field(r.headerTable, 'rule.headerTable');
  b[p + 5] = 0;
  b[p + 6] = 0;
  b[p + 7] = u8Field(r.action, 'rule.action');
  b.writeUInt32LE(u32Field(r.flags, 'rule.flags'), p + 8);
  w.pos = p + F.FIB_RULE_HDR_LEN;
  encodeAttrs(w, RULE_ATTRS, r as unknown as Record<string, unknown>);
}

/** Writes a whole rule message. */
export const writeRuleMessage: MessageWriter<RuleMessageInit> = messageWriter(writeRulePayload);

/** Writes an RTM_GETRULE dump request; strict checking allows no filter but the family. */
export function writeRuleDumpRequest(w: NetlinkWriter, seq: number, filter: { family?: number } = {}): void {
  writeRuleMessage(w, { type: RTM_GETRULE, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, { family: filter.family ?? AF_UNSPEC });
}
