/** Every netlink / rtnetlink constant the codec uses, by family. */
export * from './netlink.js';
export * from './rtnetlink.js';
export * from './link.js';
export * from './address.js';
export * from './route.js';
export * from './neighbour.js';
export * from './rule.js';
