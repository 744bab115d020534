/**
 * Schema keywords of our own. They live in the TypeBox schema next to the standard ones and never
 * reach the CRD: the CRD generator copies only OpenAPI keywords and `x-kubernetes-*`.
 */

/**
 * Names the semantic check (controller/schema/semantics.ts) that owns a string field's format.
 * Structural errors on such a field other than "not a string" are dropped, because the semantic
 * check says the same thing with the reason (e.g. which octet is out of range).
 */
export const FORMAT = 'x-tunkeeper-format';
export type FieldFormat = 'ifname' | 'cidr' | 'ip' | 'mac' | 'route-to' | 'dns-subdomain';

/** A sentence added to a structural message about the field, e.g. why the range is what it is. */
export const HINT = 'x-tunkeeper-hint';
