/**
 * A fake kernel at the rtnetlink level: FakeNetlinkSocket answers every request the controller
 * sends (dumps, link/address/route changes) from the KernelModel, and a TUN opener creates and
 * attaches to devices in the same model. The controller's real client, observe, plan and apply
 * run unchanged on top of it.
 *
 * Faults are injected per operation: an errno for the next N matching requests (or for every one:
 * a persistent fault), optionally only for one device, so a test can show that one device's fault
 * leaves the others alone. An ENOBUFS fault is what ENOBUFS means on a netlink socket: the
 * request IS carried out but its answer is lost to an overflowed receive buffer, so the client
 * cannot know the outcome.
 */
import type { IpFamily } from '../../../controller/model/desired.js';
import type { ObservedAddress, ObservedLink, ObservedRoute } from '../../../controller/model/observed.js';
import { routeTypeName, routeTypeNumber, scopeName, scopeNumber } from '../../../controller/observe/convert.js';
import type { TunHandle, TunOpener } from '../../../controller/apply/tun-opener.js';
import { Rtnl, addressFlags, routeTable, type RtnlOptions } from '../../../netlink/index.js';
import type { AddressMessageInit } from '../../../netlink/codec/address.js';
import type { LinkMessageInit } from '../../../netlink/codec/link.js';
import type { RouteMessageInit } from '../../../netlink/codec/route.js';
import { IFA_F_NODAD, IFA_F_PERMANENT, IFA_F_SECONDARY, IFA_F_TENTATIVE } from '../../../netlink/constants/address.js';
import { IFF_UP, TUN_TYPE_TAP, TUN_TYPE_TUN } from '../../../netlink/constants/link.js';
import { NLM_F_APPEND, NLM_F_EXCL, NLM_F_REPLACE } from '../../../netlink/constants/netlink.js';
import {
  AF_INET,
  AF_INET6,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTNH_F_ONLINK,
} from '../../../netlink/constants/rtnetlink.js';
import { FakeNetlinkSocket, fakeAck, fakeDump, fakeError, fakeReply, type FakeAnswer, type FakeObject, type FakeRequest } from '../../../netlink/testing/index.js';
import type { TunOpenOptions } from '../../../tun-native/index.js';
import { KernelError, KernelModel, type RouteRequest } from '../../helpers/kernel-model.js';

export const FAULT_OPS = [
  'socket-open',
  'dump',
  'link-get',
  'link-set',
  'link-delete',
  'address-add',
  'address-delete',
  'route-replace',
  'route-delete',
  'tun-create',
  'tun-attach',
] as const;
export type FaultOp = (typeof FAULT_OPS)[number];

export const FAULT_ERRNOS = ['EINTR', 'ENOBUFS', 'EBUSY', 'EEXIST', 'ESRCH', 'ENODEV', 'EPERM', 'EINVAL'] as const;
export type FaultErrno = (typeof FAULT_ERRNOS)[number];

export interface Fault {
  op: FaultOp;
  errno: FaultErrno;
  /** How many matching requests fail; Infinity: a persistent fault. */
  times: number;
  /** Only requests on this link (by name; resolved to its ifindex at the time of the request). */
  ifname?: string;
  /** The kernel's extended-ack text. */
  extAck?: string;
}

interface ActiveFault extends Fault {
  fired: number;
}

/** What a request is about, to match a fault against. */
interface Target {
  ifindex?: number;
  ifname?: string;
}

const familyOf = (af: number): IpFamily => (af === AF_INET6 ? 6 : 4);

function linkObject(l: ObservedLink): FakeObject {
  const body: LinkMessageInit = { ifindex: l.ifindex, ifname: l.ifname, flags: l.up ? IFF_UP : 0, mtu: l.mtu, txqlen: l.txQueueLength };
  if (l.alias !== undefined) body.ifalias = l.alias;
  if (l.macAddress !== undefined) body.address = l.macAddress;
  if (l.kind !== undefined) {
    body.linkInfo = { kind: l.kind };
    if (l.tun !== undefined) {
      body.linkInfo.tun = {
        type: l.tun.mode === 'tap' ? TUN_TYPE_TAP : TUN_TYPE_TUN,
        pi: l.tun.packetInfo,
        vnetHdr: l.tun.vnetHdr,
        persist: l.tun.persist,
        multiQueue: l.tun.multiQueue,
        numQueues: 0,
      };
      if (l.tun.owner !== undefined) body.linkInfo.tun.owner = l.tun.owner;
      if (l.tun.group !== undefined) body.linkInfo.tun.group = l.tun.group;
    }
  }
  return { kind: 'link', body };
}

function addressObject(a: ObservedAddress): FakeObject {
  const flags = (a.flags.permanent ? IFA_F_PERMANENT : 0) | (a.flags.secondary ? IFA_F_SECONDARY : 0) | (a.flags.tentative ? IFA_F_TENTATIVE : 0);
  const body: AddressMessageInit = {
    family: a.family === 4 ? AF_INET : AF_INET6,
    prefixLen: a.prefixLength,
    flags,
    scope: scopeNumber(a.scope),
    ifindex: a.ifindex,
    address: a.peer ?? a.address,
  };
  if (a.family === 4 || a.peer !== undefined) body.local = a.address;
  if (a.proto !== undefined) body.proto = a.proto;
  return { kind: 'address', body };
}

function routeObject(r: ObservedRoute): FakeObject {
  const body: RouteMessageInit = {
    family: r.family === 4 ? AF_INET : AF_INET6,
    dstLen: r.dstLength,
    srcLen: r.fromLength ?? 0,
    tos: r.tos ?? 0,
    headerTable: r.table < 256 ? r.table : 252,
    table: r.table,
    protocol: r.protocol,
    scope: scopeNumber(r.scope),
    type: routeTypeNumber(r.type),
    flags: r.onLink ? RTNH_F_ONLINK : 0,
  };
  if (r.dstLength > 0) body.dst = r.dst;
  if (r.from !== undefined && (r.fromLength ?? 0) > 0) body.src = r.from;
  if (r.oif !== undefined) body.oif = r.oif;
  if (r.gateway !== undefined) body.gateway = r.gateway;
  if (r.metric !== undefined) body.metric = r.metric;
  if (r.prefsrc !== undefined) body.prefsrc = r.prefsrc;
  if (r.mtu !== undefined) body.metrics = { mtu: r.mtu };
  return { kind: 'route', body };
}

function opOf(req: FakeRequest): { op: FaultOp; target: Target } | undefined {
  const m = req.message;
  const t = req.header.type;
  if (req.dump) return { op: 'dump', target: {} };
  if (m.kind === 'link') {
    const target: Target = { ...(m.body.ifindex !== 0 ? { ifindex: m.body.ifindex } : {}), ...(m.body.ifname !== undefined ? { ifname: m.body.ifname } : {}) };
    if (t === RTM_GETLINK) return { op: 'link-get', target };
    if (t === RTM_NEWLINK) return { op: 'link-set', target };
    if (t === RTM_DELLINK) return { op: 'link-delete', target };
  }
  if (m.kind === 'address') return { op: t === RTM_NEWADDR ? 'address-add' : 'address-delete', target: { ifindex: m.body.ifindex } };
  if (m.kind === 'route') return { op: t === RTM_NEWROUTE ? 'route-replace' : 'route-delete', target: m.body.oif !== undefined ? { ifindex: m.body.oif } : {} };
  return undefined;
}

export class FakeKernel {
  readonly model: KernelModel;
  readonly #faults: ActiveFault[] = [];
  /** Requests (and TUN opens) by operation, and faults fired by operation. */
  readonly calls = new Map<string, number>();
  readonly fired = new Map<string, number>();
  readonly sockets: FakeNetlinkSocket[] = [];

  constructor(model: KernelModel = new KernelModel()) {
    this.model = model;
  }

  fault(f: Fault): this {
    this.#faults.push({ ...f, fired: 0 });
    return this;
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  /** The fault that hits this operation now, consumed; or undefined. */
  #take(op: FaultOp, target: Target): ActiveFault | undefined {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    for (const f of this.#faults) {
      if (f.op !== op || f.fired >= f.times) continue;
      if (f.ifname !== undefined) {
        const byIndex = target.ifindex !== undefined ? this.#nameOf(target.ifindex) : undefined;
        if (f.ifname !== byIndex && f.ifname !== target.ifname) continue;
      }
      f.fired++;
      this.fired.set(`${op} ${f.errno}`, (this.fired.get(`${op} ${f.errno}`) ?? 0) + 1);
      return f;
    }
    return undefined;
  }

  #nameOf(ifindex: number): string | undefined {
    return this.model.state().links.find((l) => l.ifindex === ifindex)?.ifname;
  }

  /** An Rtnl client on a fresh fake socket (the 'socket-open' fault makes this reject). */
  async openRtnl(opts: Omit<RtnlOptions, 'transport' | 'netns'> = {}): Promise<Rtnl> {
    const f = this.#take('socket-open', {});
    if (f !== undefined) throw Object.assign(new Error(`socket(AF_NETLINK) failed: ${f.errno}`), { code: f.errno, syscall: 'socket' });
    const socket: FakeNetlinkSocket = new FakeNetlinkSocket({ handler: (req): FakeAnswer | FakeAnswer[] | undefined => this.#handle(socket, req) });
    this.sockets.push(socket);
    return Rtnl.open({ ...opts, transport: socket });
  }

  #handle(socket: FakeNetlinkSocket, req: FakeRequest): FakeAnswer | FakeAnswer[] | undefined {
    const what = opOf(req);
    if (what === undefined) return undefined;
    const f = this.#take(what.op, what.target);
    if (what.op === 'dump') {
      const answer = this.#dump(req);
      if (f === undefined) return answer;
      // EINTR on a dump is the kernel's NLM_F_DUMP_INTR; ENOBUFS an overflow of the socket
      // during the dump; anything else the dump's own error.
      // The interrupted attempt is also incomplete (half of it), as a walk cut short by a
      // change would be: whoever uses it would act on a partial picture.
      if (f.errno === 'EINTR' && answer.kind === 'dump') return fakeDump(answer.objects.slice(0, Math.floor(answer.objects.length / 2)), { interrupted: true });
      if (f.errno === 'ENOBUFS') {
        socket.injectOverflow();
        return answer;
      }
      return fakeDump([], { errno: f.errno, ...(f.extAck !== undefined ? { extAck: f.extAck } : {}) });
    }
    if (f !== undefined && f.errno !== 'ENOBUFS') return fakeError(f.errno, f.extAck ?? `injected ${f.errno} on ${what.op}`);
    let answer: FakeAnswer | FakeAnswer[];
    try {
      answer = this.#execute(req);
    } catch (e) {
      if (e instanceof KernelError) answer = fakeError(e.code, e.message);
      else throw e;
    }
    if (f !== undefined) {
      // Done, but the answer is lost: the client hears only ENOBUFS.
      socket.injectOverflow();
      return { kind: 'none' };
    }
    return answer;
  }

  #dump(req: FakeRequest): FakeAnswer {
    const s = this.model.state();
    switch (req.header.type) {
      case RTM_GETLINK:
        return fakeDump(s.links.map(linkObject));
      case RTM_GETADDR:
        return fakeDump(s.addresses.map(addressObject));
      case RTM_GETROUTE:
        // Unfiltered: the client filters again itself (as it must against an old kernel).
        return fakeDump(s.routes.map(routeObject));
      default:
        return fakeDump([]);
    }
  }

  #linkRef(ifindex: number, ifname: string | undefined): ObservedLink {
    if (ifindex !== 0) return this.model.link(ifindex);
    const l = ifname === undefined ? undefined : this.model.linkByName(ifname);
    if (l === undefined) throw new KernelError('ENODEV', `no link named ${ifname}`);
    return l;
  }

  #execute(req: FakeRequest): FakeAnswer | FakeAnswer[] {
    const m = req.message;
    const t = req.header.type;
    const flags = req.header.flags;
    if (m.kind === 'link') {
      const link = this.#linkRef(m.body.ifindex, m.body.ifname);
      if (t === RTM_GETLINK) return [fakeReply(linkObject(link)), fakeAck()];
      if (t === RTM_DELLINK) {
        this.model.deleteLink(link.ifindex);
        return fakeAck();
      }
      const set: Parameters<KernelModel['setLink']>[1] = {};
      if (m.body.mtu !== undefined) set.mtu = m.body.mtu;
      if (m.body.txqlen !== undefined) set.txQueueLength = m.body.txqlen;
      if (m.body.address !== undefined) set.macAddress = m.body.address;
      if (m.body.ifalias !== undefined) set.alias = m.body.ifalias === '' ? null : m.body.ifalias;
      if ((m.body.change & IFF_UP) !== 0) set.up = (m.body.flags & IFF_UP) !== 0;
      this.model.setLink(link.ifindex, set);
      return fakeAck();
    }
    if (m.kind === 'address') {
      const b = m.body;
      const family = familyOf(b.family);
      const address = b.local ?? b.address!;
      const peer = b.local !== undefined && b.address !== undefined && b.address !== b.local ? b.address : undefined;
      if (t === RTM_DELADDR) {
        this.model.deleteAddress(b.ifindex, family, address, b.prefixLen, peer);
        return fakeAck();
      }
      this.model.addAddress(b.ifindex, family, address, b.prefixLen, {
        ...(b.proto !== undefined ? { proto: b.proto } : {}),
        noDad: (addressFlags(b) & IFA_F_NODAD) !== 0,
        ...(peer !== undefined ? { peer } : {}),
        replace: (flags & NLM_F_REPLACE) !== 0,
      });
      return fakeAck();
    }
    if (m.kind === 'route') {
      const b = m.body;
      const family = familyOf(b.family);
      const r: RouteRequest = {
        family,
        table: routeTable(b),
        dst: b.dst ?? (family === 4 ? '0.0.0.0' : '::'),
        dstLength: b.dstLen,
        protocol: b.protocol,
        type: routeTypeName(b.type),
        scope: scopeName(b.scope),
        onLink: (b.flags & RTNH_F_ONLINK) !== 0,
      };
      if (b.tos !== 0) r.tos = b.tos;
      if (b.srcLen > 0 && b.src !== undefined) {
        r.from = b.src;
        r.fromLength = b.srcLen;
      }
      if (b.metric !== undefined) r.metric = b.metric;
      if (b.oif !== undefined) r.oif = b.oif;
      if (b.gateway !== undefined) r.gateway = b.gateway;
      if (b.prefsrc !== undefined) r.prefsrc = b.prefsrc;
      if (b.metrics?.mtu !== undefined) r.mtu = b.metrics.mtu;
      if (t === RTM_DELROUTE) {
        if (b.protocol === 0) delete (r as Partial<RouteRequest>).protocol;
        this.model.deleteRoute(r);
        return fakeAck();
      }
      this.model.addRoute(r, (flags & NLM_F_REPLACE) !== 0 ? 'replace' : (flags & NLM_F_EXCL) !== 0 ? 'add' : (flags & NLM_F_APPEND) !== 0 ? 'append' : 'add');
      return fakeAck();
    }
    return fakeAck();
  }

  /** TUNSETIFF against the model: creates a non-persistent device, or attaches to a TUN/TAP one. */
  readonly tun: TunOpener = {
    open: (o: TunOpenOptions) => {
      const name = o.name ?? 'tun%d';
      const existing = this.model.linkByName(name);
      const f = this.#take(existing === undefined ? 'tun-create' : 'tun-attach', { ifname: name });
      if (f !== undefined) {
        return Promise.reject(Object.assign(new Error(`ioctl(TUNSETIFF) failed for ${name}: ${f.errno}`), { code: f.errno, syscall: 'ioctl(TUNSETIFF)' }));
      }
      const flags = { mode: o.mode ?? 'tun', multiQueue: o.multiQueue ?? false, vnetHdr: o.vnetHdr ?? false, packetInfo: o.packetInfo ?? false };
      let link: ObservedLink;
      try {
        if (existing === undefined) {
          link = this.model.createTun(name, { ...flags, persist: false, ...(o.owner !== undefined ? { owner: o.owner } : {}), ...(o.group !== undefined ? { group: o.group } : {}) });
        } else {
          this.model.setTunOptions(existing.ifindex, flags, {});
          link = existing;
        }
      } catch (e) {
        if (e instanceof KernelError) return Promise.reject(Object.assign(new Error(e.message), { code: e.code }));
        throw e;
      }
      const ifindex = link.ifindex;
      let closed = false;
      const handle: TunHandle = {
        name,
        ifindex,
        setPersist: (on) => this.model.setTunOptions(ifindex, flags, { persist: on }),
        setOwner: (uid) => this.model.setTunOptions(ifindex, flags, { owner: uid }),
        setGroup: (gid) => this.model.setTunOptions(ifindex, flags, { group: gid }),
        close: () => {
          if (closed) return Promise.resolve();
          closed = true;
          // The last file descriptor of a non-persistent device takes the device along.
          const l = this.model.state().links.find((x) => x.ifindex === ifindex);
          if (l?.tun !== undefined && !l.tun.persist) this.model.deleteLink(ifindex);
          return Promise.resolve();
        },
      };
      return Promise.resolve(handle);
    },
  };
}
