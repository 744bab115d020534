/**
 * Structural validation against the TypeBox schema (types, ranges, required and unknown fields),
 * with messages written for people: `must be from 68 to 65535, got 50`, not `Expected integer`.
 */
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { FORMAT, HINT } from './keywords.js';
import type { FieldPath, FieldProblem } from './problem.js';

/** What a YAML value looks like, for "expected X, got Y". */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (typeof v === 'string') {
    const shown = v.length > 40 ? `${v.slice(0, 40)}…` : v;
    return `the string ${JSON.stringify(shown)}`;
  }
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `${v}`;
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

/** YAML 1.1 booleans that YAML 1.2 (what tunkeeper reads) takes as strings. */
const YAML11_BOOLEANS = /^(y|yes|n|no|on|off|Y|Yes|YES|N|No|NO|On|ON|Off|OFF|True|TRUE|False|FALSE)$/;

function pointerToPath(pointer: string, root: unknown): (string | number)[] {
  if (pointer === '') return [];
  const out: (string | number)[] = [];
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^(0|[1-9][0-9]*)$/.test(seg)) {
      out.push(Number(seg));
      node = node[Number(seg)];
    } else {
      out.push(seg);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

function withHint(schema: TSchema, text: string): string {
  const hint = schema[HINT] as string | undefined;
  return hint ? `${text} (${hint})` : text;
}

function literalChoices(schema: TSchema): unknown[] | undefined {
  const variants = schema.anyOf as TSchema[] | undefined;
  if (!variants || !variants.every((v) => 'const' in v)) return undefined;
  return variants.map((v) => v.const);
}

function message(e: ValueError): string | undefined {
  const s = e.schema;
  const v = e.value;
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.ObjectAdditionalProperties:
      return undefined; // reported by the caller, which knows the allowed names
    case ValueErrorType.Integer:
      if (typeof v === 'number' && Number.isFinite(v)) return withHint(s, `must be a whole number, got ${v}`);
      return `must be a whole number, got ${describeValue(v)}${typeof v === 'string' && /^-?[0-9]+$/.test(v) ? ' (remove the quotes)' : ''}`;
    case ValueErrorType.Number:
      return `must be a number, got ${describeValue(v)}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
      return withHint(s, `must be from ${s.minimum} to ${s.maximum}, got ${v}`);
    case ValueErrorType.Boolean:
      if (typeof v === 'string' && YAML11_BOOLEANS.test(v)) {
        return `must be true or false, got the string ${JSON.stringify(v)} (YAML 1.2 reads only true and false as booleans)`;
      }
      return `must be true or false, got ${describeValue(v)}`;
    case ValueErrorType.String:
      return `must be a string, got ${describeValue(v)}${typeof v === 'number' || typeof v === 'boolean' ? ' (quote it)' : ''}`;
    case ValueErrorType.StringMinLength:
      return s.minLength === 1 ? 'must not be empty' : `must be at least ${s.minLength} characters long`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${s.maxLength} characters long, got ${String(v).length}`;
    case ValueErrorType.StringPattern:
      return `${JSON.stringify(v)} does not have the expected form (${s.pattern})`;
    case ValueErrorType.Array:
      return `must be a list, got ${describeValue(v)}`;
    case ValueErrorType.ArrayMaxItems:
      return withHint(s, `has ${(v as unknown[]).length} entries; at most ${s.maxItems} are allowed`);
    case ValueErrorType.ArrayMinItems:
      return `needs at least ${s.minItems} entries`;
    case ValueErrorType.Object:
      return `must be a mapping, got ${describeValue(v)}`;
    case ValueErrorType.Union: {
      if (s['x-kubernetes-int-or-string'] === true) return `must be a whole number or a percentage such as "25%", got ${describeValue(v)}`;
      const choices = literalChoices(s);
      if (choices) return `must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}, got ${typeof v === 'string' ? JSON.stringify(v) : describeValue(v)}`;
      return `has an unexpected form: ${e.message}`;
    }
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(s.const)}, got ${describeValue(v)}`;
    default:
      return e.message;
  }
}

const TYPE_ERRORS = new Set([
  ValueErrorType.Integer,
  ValueErrorType.Number,
  ValueErrorType.String,
  ValueErrorType.Boolean,
  ValueErrorType.Array,
  ValueErrorType.Object,
  ValueErrorType.Union,
]);

/** When a field has several errors, the one that says most: missing, then wrong type, then the rest. */
function rank(t: ValueErrorType): number {
  if (t === ValueErrorType.ObjectRequiredProperty) return 0;
  if (TYPE_ERRORS.has(t)) return 1;
  return 2;
}

export interface StructuralResult {
  problems: FieldProblem[];
  /** Dotted paths with a structural problem: semantic checks skip them and everything below. */
  invalid: Set<string>;
}

export const pathKey = (path: FieldPath): string => JSON.stringify(path);

/**
 * Every structural problem of `value` against `schema`, at most one per field. `allowedKeys`
 * names the properties of the object at a path, for "unknown field" messages.
 */
const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** The compiled checker: a valid document (the common case) is checked at generated-code speed. */
function checker(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

export function structuralProblems(schema: TSchema, value: unknown): StructuralResult {
  if (checker(schema).Check(value)) return { problems: [], invalid: new Set() };
  const byPath = new Map<string, { path: FieldPath; error: ValueError }>();
  for (const error of Value.Errors(schema, value)) {
    const path = pointerToPath(error.path, value);
    const key = pathKey(path);
    const seen = byPath.get(key);
    if (seen && rank(seen.error.type) <= rank(error.type)) continue;
    // A string with a format of ours: only "not a string" is structural; the semantic check
    // explains everything else (pattern, length) with the reason.
    if (error.schema[FORMAT] && error.type !== ValueErrorType.String && error.type !== ValueErrorType.ObjectRequiredProperty) continue;
    byPath.set(key, { path, error });
  }
  const problems: FieldProblem[] = [];
  const invalid = new Set<string>();
  for (const { path, error } of byPath.values()) {
    invalid.add(pathKey(path));
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      const parent = path.slice(0, -1);
      const allowed = Object.keys((error.schema.properties as object | undefined) ?? {});
      const name = String(path[path.length - 1]);
      const suggestion = closest(name, allowed);
      problems.push({
        path,
        anchor: 'key',
        detail:
          `unknown field "${name}"` +
          (suggestion ? ` (did you mean "${suggestion}"?)` : allowed.length > 0 ? ` (${parent.length > 0 ? 'allowed here' : 'allowed'}: ${allowed.join(', ')})` : ''),
      });
      continue;
    }
    const detail = message(error);
    if (detail !== undefined) problems.push({ path, detail });
  }
  return { problems, invalid };
}

/** The allowed name closest to a misspelt one, if it is close enough to be a likely typo. */
function closest(name: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

const isMappingValue = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * `value` with the schema's defaults filled in where fields are absent, nested defaults included
 * (a defaulted `spec: {}` gets its own defaults too), as the API server's structural defaulting does.
 * Returns new objects along the way; the input is not changed. Values of the wrong type are left
 * alone: they are reported by structuralProblems.
 */
export function withDefaults(schema: TSchema, value: unknown): unknown {
  if (value === undefined) {
    return schema.default === undefined ? undefined : withDefaults(schema, structuredClone(schema.default));
  }
  const props = propertyList(schema);
  if (props && isMappingValue(value)) {
    const out: Record<string, unknown> = { ...value };
    for (const [key, child] of props) {
      if (out[key] === undefined && child.default === undefined && !propertyList(child)) continue;
      const v = withDefaults(child, out[key]);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }
  const items = schema.items as TSchema | undefined;
  if (items && Array.isArray(value) && (propertyList(items) || items.default !== undefined)) return value.map((v) => withDefaults(items, v));
  return value;
}

const propertyLists = new WeakMap<TSchema, [string, TSchema][] | null>();

/** A schema's properties as a list, computed once per schema node (defaulting runs per route). */
function propertyList(schema: TSchema): [string, TSchema][] | undefined {
  let list = propertyLists.get(schema);
  if (list === undefined) {
    const props = schema.properties as Record<string, TSchema> | undefined;
    list = props ? Object.entries(props) : null;
    propertyLists.set(schema, list);
  }
  return list ?? undefined;
}
