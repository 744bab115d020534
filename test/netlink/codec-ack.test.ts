/** NLMSG_ERROR (errors and acks, with extended-ack TLVs) and NLMSG_DONE. */
import { describe, expect, it } from '@jest/globals';
import {
  NetlinkDecodeError,
  decodeMessages,
  encodeMessage,
  encodeMessages,
  type DoneMessage,
  type ErrorMessage,
  type RtnlMessage,
} from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';
import { hexBuffers, loadFixture } from '../fixtures/netlink/fixtures.js';

const errorsFx = loadFixture('errors');
const replies = hexBuffers(errorsFx.datagrams).flatMap((d) => decodeMessages(d));
const requests = hexBuffers(errorsFx.requests);

describe('kernel refusals', () => {
  it('a policy violation names the offending attribute by its offset in the request', () => {
    const m = replies[0] as Extract<RtnlMessage, { kind: 'error' }>;
    expect(m.kind).toBe('error');
    expect(m.header.flags & C.NLM_F_ACK_TLVS).toBe(C.NLM_F_ACK_TLVS);
    expect(m.body.errno).toBe(34); // ERANGE: RTA_OIF of 2 bytes
    expect(m.body.extAck?.message).toBe('Attribute failed policy validation');
    expect(m.body.extAck?.policy?.length).toBeGreaterThan(0);
    const offset = m.body.extAck!.offset!;
    expect(requests[0]!.readUInt16LE(offset + 2)).toBe(C.RTA_OIF);
    // the echoed request is the one sent
    expect(Buffer.concat([requests[0]!.subarray(0, 16), Buffer.from(m.body.requestPayload!)])).toEqual(requests[0]);
    expect(m.body.request).toEqual({ length: requests[0]!.length, type: C.RTM_NEWROUTE, flags: requests[0]!.readUInt16LE(6), seq: m.header.seq, pid: 0 });
  });

  it('plain errnos: ENODEV for a missing device, EEXIST for a duplicate', () => {
    expect(replies.slice(1, 3).map((m) => (m.kind === 'error' ? m.body.errno : -1))).toEqual([19, 17]);
  });

  it('a refused strict dump ends in NLMSG_DONE carrying the errno and the reason', () => {
    const done = replies.slice(3).map((m) => m as Extract<RtnlMessage, { kind: 'done' }>);
    expect(done.map((m) => [m.kind, m.body.errno, m.body.extAck?.message])).toEqual([
      ['done', 22, 'Unsupported attribute in dump request'],
      ['done', 22, 'Filter by device index not supported for link dumps'],
    ]);
  });

  it('an ack is a capped error message with errno 0 for the request\'s seq', () => {
    const [ack] = hexBuffers(loadFixture('ack').datagrams).flatMap((d) => decodeMessages(d));
    const req = hexBuffers(loadFixture('ack').requests)[0]!;
    expect(ack).toMatchObject({ kind: 'error', body: { errno: 0, request: { seq: req.readUInt32LE(8), type: C.RTM_NEWADDR } } });
    expect(ack!.header.flags & C.NLM_F_CAPPED).toBe(C.NLM_F_CAPPED);
    expect((ack!.body as ErrorMessage).requestPayload).toBeUndefined();
  });
});

describe('synthetic error and done messages', () => {
  const request = { length: 40, type: C.RTM_NEWROUTE, flags: C.NLM_F_REQUEST | C.NLM_F_ACK, seq: 7, pid: 0 };

  it('every extended-ack attribute round-trips, unknown ones raw; writeMessage sets CAPPED and ACK_TLVS', () => {
    const body: ErrorMessage = {
      errno: 22,
      request,
      extAck: {
        message: 'Missing nexthop',
        offset: 28,
        missingType: C.RTA_GATEWAY,
        missingNest: 20,
        cookie: Buffer.from('c00c1e', 'hex'),
        policy: Buffer.from('0800010004000000', 'hex'),
        rawAttrs: [{ type: 42, data: Buffer.from([1]) }],
      },
    };
    const bytes = encodeMessage({ kind: 'error', header: { type: C.NLMSG_ERROR, flags: 0, seq: 7 }, body });
    const [m] = decodeMessages(bytes);
    expect(m!.header.flags).toBe(C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS);
    const { attrOrder, ...ext } = (m!.body as ErrorMessage).extAck!;
    expect(attrOrder).toEqual([1, 2, 5, 6, 3, C.NLA_F_NESTED | 4, 42]);
    expect({ ...(m!.body as ErrorMessage), extAck: ext }).toEqual(body);
    expect(encodeMessages(decodeMessages(bytes))).toEqual(bytes);
  });

  it('an uncapped error echoes the request payload, padded, before the TLVs', () => {
    const body: ErrorMessage = { errno: 1, request: { ...request, length: 16 + 5 }, requestPayload: Buffer.from('0102030405', 'hex'), extAck: { message: 'x' } };
    const bytes = encodeMessage({ kind: 'error', header: { type: C.NLMSG_ERROR, flags: C.NLM_F_ACK_TLVS }, body });
    expect(bytes.length).toBe(16 + 4 + 16 + 8 + 8);
    const [m] = decodeMessages(bytes);
    expect(m!.body).toEqual(body);
  });

  it('done messages: with status, with ext ack, and empty', () => {
    const cases: DoneMessage[] = [{ errno: 0 }, { errno: 4, extAck: { message: 'dump interrupted' } }, {}];
    for (const body of cases) {
      const bytes = encodeMessage({ kind: 'done', header: { type: C.NLMSG_DONE, flags: C.NLM_F_MULTI | C.NLM_F_DUMP_INTR } , body });
      const [m] = decodeMessages(bytes);
      expect(m!.kind).toBe('done');
      expect(m!.body).toEqual(body);
      expect(m!.header.flags & C.NLM_F_DUMP_INTR).toBe(C.NLM_F_DUMP_INTR);
    }
  });

  it('errno survives the extremes of its s32 wire form', () => {
    for (const wire of [-0x80000000, 0x7fffffff, -1, 1]) {
      const b = Buffer.alloc(36);
      b.writeUInt32LE(36, 0);
      b.writeUInt16LE(C.NLMSG_ERROR, 4);
      b.writeUInt16LE(C.NLM_F_CAPPED, 6);
      b.writeInt32LE(wire, 16);
      b.writeUInt32LE(16, 20);
      expect(encodeMessages(decodeMessages(b))).toEqual(b);
    }
  });
});

describe('malformed error and done messages', () => {
  function raw(type: number, flags: number, payload: Buffer): Buffer {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(16 + payload.length, 0);
    h.writeUInt16LE(type, 4);
    h.writeUInt16LE(flags, 6);
    return Buffer.concat([h, payload]);
  }
  const echo = (len: number): Buffer => {
    const b = Buffer.alloc(20);
    b.writeInt32LE(-22, 0);
    b.writeUInt32LE(len, 4);
    return b;
  };
  it.each([
    ['an error payload shorter than struct nlmsgerr', raw(C.NLMSG_ERROR, 0, Buffer.alloc(19))],
    ['an echoed request shorter than its header', raw(C.NLMSG_ERROR, 0, echo(10))],
    ['an echoed request longer than the message', raw(C.NLMSG_ERROR, 0, echo(400))],
    ['bytes after the error without NLM_F_ACK_TLVS', raw(C.NLMSG_ERROR, C.NLM_F_CAPPED, Buffer.concat([echo(16), Buffer.alloc(4)]))],
    ['a done payload of 2 bytes', raw(C.NLMSG_DONE, 0, Buffer.alloc(2))],
    ['bytes after the done status without NLM_F_ACK_TLVS', raw(C.NLMSG_DONE, 0, Buffer.alloc(8))],
    ['ext-ack TLVs that overrun the message', raw(C.NLMSG_DONE, C.NLM_F_ACK_TLVS, Buffer.from('00000000ff000100', 'hex'))],
  ])('%s is a NetlinkDecodeError', (_name, bytes) => {
    expect(() => decodeMessages(bytes)).toThrow(NetlinkDecodeError);
  });
});
