/** Request builders: plain values to pass to Rtnl.request() or, many at once, Rtnl.batch(). */
export { ACK_BUDGET, type RtnlRequest, type BatchResult } from './request.js';
export { setLink, deleteLink, getLink, type LinkRef, type LinkSetSpec } from './link.js';
export { addAddress, replaceAddress, deleteAddress, type AddressSpec, type AddressKey } from './address.js';
export {
  addRoute,
  replaceRoute,
  deleteRoute,
  getRoute,
  type RouteSpec,
  type RouteKey,
  type NexthopSpec,
  type RouteTypeName,
  type RouteGetSpec,
  type RouteGetOptions,
} from './route.js';
export { parsePrefix, parseAddress, formatPrefix, type Prefix } from './prefix.js';
