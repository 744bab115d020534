/**
 * YAML text to validated declarations, with every problem at `file:line:col` of the offending text.
 * The `yaml` package keeps each node's source range; a LineCounter turns offsets into lines and
 * columns; locate() walks a problem's field path through the document's nodes.
 *
 * Hostile input is refused with a message rather than survived slowly: a size cap (checked before
 * parsing), a shape check (yaml-guard.ts: nesting depth, document count), and yaml's own cap on
 * alias expansion (billion laughs).
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Document, type Node as YamlNode } from 'yaml';
import type { DesiredDevice, Policy } from '../model/desired.js';
import { policyProblems } from './policy-problems.js';
import { compareProblems, fieldMessage, formatPath, type Anchor, type FieldPath, type Problem } from './problem.js';
import { validateTunDevice, type DeclarationContext } from './validate.js';
import { checkYamlShape } from './yaml-guard.js';

export interface YamlLimits {
  /** Largest file read, in bytes: 65k routes written one per line are about 3 MiB. The parsed document takes many times its size in memory, which this bounds. */
  maxBytes: number;
  maxDocuments: number;
  /** Deepest nesting of collections; a TunDevice needs about 6. */
  maxDepth: number;
  /** Alias expansions per document (yaml's maxAliasCount): stops billion-laughs documents. */
  maxAliasCount: number;
  /** Problems reported per file; the rest are counted in one last line. */
  maxProblems: number;
}

export const DEFAULT_YAML_LIMITS: YamlLimits = {
  maxBytes: 4 * 1024 * 1024,
  maxDocuments: 10000,
  maxDepth: 64,
  maxAliasCount: 100,
  maxProblems: 200,
};

/** A place in a file, and the field written there (`metadata.name`, `spec.ifname`). */
export interface FieldLocation {
  file?: string;
  line?: number;
  col?: number;
  path: string;
}

/** A valid TunDevice document and where its identifying fields are written. */
export interface Declaration {
  device: DesiredDevice;
  nameAt: FieldLocation;
  ifnameAt: FieldLocation;
}

export interface ParsedFile {
  declarations: Declaration[];
  problems: Problem[];
  /** Number of non-empty documents, valid or not. */
  documents: number;
}

export interface ParseOptions {
  context?: DeclarationContext;
  limits?: Partial<YamlLimits>;
  /** Also report what this policy would refuse (validate does; the agent refuses at plan time). */
  policy?: Policy;
}

export function parseDeclarations(text: string, file: string, options: ParseOptions = {}): ParsedFile {
  const limits = { ...DEFAULT_YAML_LIMITS, ...options.limits };
  const lines = new LineCounter();
  const problems: Problem[] = [];
  const at = (offset: number): { file: string; line: number; col: number } => {
    // LineCounter only knows lines the parser has seen; before parsing, count them here.
    if (lines.lineStarts.length === 0) {
      const before = text.slice(0, offset);
      const line = before.split('\n').length;
      return { file, line, col: offset - (before.lastIndexOf('\n') + 1) + 1 };
    }
    const pos = lines.linePos(offset);
    return { file, line: pos.line, col: pos.col };
  };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) {
    return { declarations: [], documents: 0, problems: [{ file, line: 1, col: 1, message: `file is ${bytes} bytes, more than the ${limits.maxBytes} a declaration file may have` }] };
  }
  const shape = checkYamlShape(text, limits);
  if (!shape.ok) return { declarations: [], documents: 0, problems: [{ ...at(shape.offset), message: shape.message }] };

  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, strict: true, uniqueKeys: true, version: '1.2' });
  const docs = Array.isArray(parsed) ? parsed : [];
  const declarations: Declaration[] = [];
  let documents = 0;
  for (const doc of docs) {
    const start = doc.contents?.range?.[0] ?? doc.range[0];
    const yamlIssues = [...doc.errors, ...doc.warnings];
    for (const e of yamlIssues) problems.push({ ...at(e.pos[0]), message: `invalid YAML: ${yamlMessage(e.message)}` });
    // An empty document (`---` alone, or only comments) declares nothing and is fine.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    documents++;
    if (doc.errors.length > 0) continue;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (e) {
      // An alias without an anchor before it is a mistake, not an attack: name it, where it is.
      const dangling = danglingAlias(doc);
      if (dangling !== undefined) {
        problems.push({ ...at(dangling.offset), message: `invalid YAML: alias *${dangling.name} has no anchor &${dangling.name} before it` });
        continue;
      }
      const why = e instanceof ReferenceError && /alias/i.test(e.message)
        ? `aliases expand to too much data (more than ${limits.maxAliasCount} expansions): a declaration does not need this, and it is how "billion laughs" documents exhaust memory`
        : `cannot be read: ${e instanceof Error ? e.message : String(e)}`;
      problems.push({ ...at(start), message: `document ${why}` });
      continue;
    }
    const origin = at(start);
    const result = validateTunDevice(value, { context: options.context ?? 'file', origin: `${origin.file}:${origin.line}:${origin.col}` });
    if (result.device && options.policy) result.problems.push(...policyProblems(result.device, options.policy, result.ifnamePath));
    for (const p of result.problems) {
      problems.push({ ...at(locate(doc, p.path, p.anchor ?? 'value')), ...(p.path.length > 0 ? { path: formatPath(p.path) } : {}), message: fieldMessage(p) });
    }
    if (result.device && result.problems.length === 0) {
      const place = (path: FieldPath): FieldLocation => ({ ...at(locate(doc, path, 'value')), path: formatPath(path) });
      declarations.push({ device: result.device, nameAt: place(['metadata', 'name']), ifnameAt: place(result.ifnamePath) });
    }
  }
  problems.sort(compareProblems);
  if (problems.length > limits.maxProblems) {
    const rest = problems.length - limits.maxProblems;
    problems.length = limits.maxProblems;
    problems.push({ file, message: `${rest} more problems in this file not shown` });
  }
  return { declarations, problems, documents };
}

/** The first alias whose anchor is not defined before it (yaml reports it only when converting). */
function danglingAlias(doc: Document): { name: string; offset: number } | undefined {
  let found: { name: string; offset: number } | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return undefined;
      found = { name: node.source, offset: node.range?.[0] ?? 0 };
      return visit.BREAK;
    },
  });
  return found;
}

/** yaml's messages may carry a code and a source excerpt; keep the sentence. */
function yamlMessage(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * The offset of the text a problem is about. A missing field points at its parent's key (or the
 * list item), an unknown field at its key, anything else at the value. A path through an alias
 * points at the alias, where the value is used, not at the anchor it copies.
 */
export function locate(doc: Document, path: FieldPath, anchor: Anchor): number {
  const startOf = (n: unknown): number | undefined => (n && typeof n === 'object' && 'range' in n ? (n as YamlNode).range?.[0] : undefined);
  let node: unknown = doc.contents;
  let aliasAt: number | undefined;
  let fallback = startOf(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) {
      aliasAt ??= startOf(node);
      node = node.resolve(doc);
    }
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) return aliasAt ?? fallback;
      const keyAt = startOf(pair.key) ?? fallback;
      const value = pair.value;
      const empty = value === null || (isScalar(value) && value.value === null && !value.source);
      if ((last && anchor === 'key') || empty) return aliasAt ?? keyAt;
      fallback = keyAt;
      node = value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      node = node.items[seg];
      fallback = startOf(node) ?? fallback;
    } else {
      return aliasAt ?? fallback;
    }
  }
  return aliasAt ?? startOf(node) ?? fallback;
}
