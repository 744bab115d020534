/** How iproute2 prints what it decodes, for comparing our messages with `ip -j` output. */
import * as K from '../../netlink/constants/index.js';

/** iproute2's print_rt_flags. */
export function routeFlags(flags: number): string[] {
  const out: string[] = [];
  if (flags & K.RTNH_F_DEAD) out.push('dead');
  if (flags & K.RTNH_F_ONLINK) out.push('onlink');
  if (flags & K.RTNH_F_PERVASIVE) out.push('pervasive');
  if (flags & K.RTNH_F_OFFLOAD) out.push('offload');
  if (flags & K.RTNH_F_TRAP) out.push('trap');
  if (flags & K.RTM_F_NOTIFY) out.push('notify');
  if (flags & K.RTNH_F_LINKDOWN) out.push('linkdown');
  if (flags & K.RTNH_F_UNRESOLVED) out.push('unresolved');
  return out;
}
