/**
 * A problem with a declaration: where it is and what is wrong, in words a person acts on.
 * `tunkeeper validate` prints one per line as `file:line:col: message`.
 */

/** A field inside a document: property names and array indexes, e.g. ['spec', 'routes', 0, 'via']. */
export type FieldPath = ReadonlyArray<string | number>;

/** Where a problem points inside its document: at a field's value (default) or at its key. */
export type Anchor = 'value' | 'key';

/** A problem found in one document, before it is placed in a file. */
export interface FieldProblem {
  path: FieldPath;
  /** The sentence after the path, e.g. `must be from 68 to 65535, got 50`. */
  detail: string;
  anchor?: Anchor;
}

export interface Problem {
  /** The file (as given, relative or absolute) or another origin such as `TunDevice/edge`. */
  file?: string;
  /** 1-based line and column of the offending text. */
  line?: number;
  col?: number;
  /** The field path in dotted form, e.g. `spec.routes[0].via`; absent for whole-file problems. */
  path?: string;
  /** The full sentence, field path included: `spec.mtu: must be from 68 to 65535, got 50`. */
  message: string;
}

/** `spec.routes[0].via` */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The message of a field problem: the path, then what is wrong. */
export function fieldMessage(p: FieldProblem): string {
  return p.path.length === 0 ? p.detail : `${formatPath(p.path)}: ${p.detail}`;
}

/** `file:line:col: message`, leaving out the parts that are unknown. */
export function formatProblem(p: Problem): string {
  let where = p.file ?? '';
  if (p.line !== undefined) where += `:${p.line}${p.col !== undefined ? `:${p.col}` : ''}`;
  return where === '' ? p.message : `${where}: ${p.message}`;
}

/** Sorts problems by file, then position, so that output is stable and reads top to bottom. */
export function compareProblems(a: Problem, b: Problem): number {
  const fa = a.file ?? '';
  const fb = b.file ?? '';
  if (fa !== fb) return fa < fb ? -1 : 1;
  return (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0) || (a.message < b.message ? -1 : a.message > b.message ? 1 : 0);
}
