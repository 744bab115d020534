/**
 * A cheap look at YAML text before the real parser sees it, to refuse hostile shapes with a clear
 * message instead of a stack overflow or seconds of work: nesting deeper than any declaration needs
 * (`[[[[...`, `- - - - ...`) and absurd numbers of documents. The `yaml` package composes nodes
 * recursively, so a few thousand levels already overflow the stack (it survives, but reports
 * "Maximum call stack size exceeded" after a long parse).
 *
 * This is a linear scan that knows just enough YAML to count nesting: flow brackets outside quoted
 * scalars and comments, block indentation, compact sequence indicators, and block scalars (whose
 * content is text). It errs towards counting too much, which can only refuse a file nested far
 * beyond anything a TunDevice has (about 6 levels); the limits on size and aliases still apply.
 */

export interface ShapeLimits {
  maxDepth: number;
  maxDocuments: number;
}

export type ShapeVerdict = { ok: true; documents: number } | { ok: false; offset: number; message: string };

const isBlank = (c: string | undefined) => c === ' ' || c === '\t';
const BLOCK_SCALAR_HEADER = /^[|>][0-9+-]*[ \t]*(#.*)?$/;

export function checkYamlShape(text: string, limits: ShapeLimits): ShapeVerdict {
  let flow = 0;
  let quote: '"' | "'" | undefined;
  let documents = 0;
  let sawContent = false;
  const indents: number[] = [];
  /** While inside a block scalar: the indentation of the line that opened it. */
  let blockScalarParent = -1;
  /** The block depth where the current flow collection started. */
  let baseDepth = 0;

  const tooDeep = (offset: number, depth: number): ShapeVerdict => ({
    ok: false,
    offset,
    message: `nesting is deeper than ${limits.maxDepth} levels (${depth} here); a TunDevice needs about 6, so this is not a declaration`,
  });

  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    const line = text.slice(lineStart, lineEnd).replace(/\r$/, '');
    let indent = 0;
    while (line[indent] === ' ') indent++;
    const content = line.slice(indent);
    const blankLine = content === '' || content.startsWith('#');

    if (blockScalarParent >= 0) {
      if (blankLine || indent > blockScalarParent) {
        lineStart = lineEnd + 1;
        continue;
      }
      blockScalarParent = -1;
    }

    let i = 0;
    let blockDepth = 0;
    if (quote === undefined && flow === 0 && !blankLine) {
      if (/^(---|\.\.\.)([ \t]|$)/.test(line)) {
        if (line.startsWith('---') && (sawContent || documents > 0)) documents++;
        else if (line.startsWith('---')) documents = 1;
        indents.length = 0;
        i = 3;
      } else {
        if (documents === 0) documents = 1;
        while (indents.length > 0 && indents[indents.length - 1] > indent) indents.pop();
        if (indents.length === 0 || indents[indents.length - 1] < indent) indents.push(indent);
        // Compact nested collections on one line: `- - - x`, `- ? a`.
        let compact = 0;
        let j = indent;
        while ((line[j] === '-' || line[j] === '?') && (j + 1 === line.length || isBlank(line[j + 1]))) {
          compact++;
          j++;
          while (isBlank(line[j])) j++;
        }
        blockDepth = indents.length + compact;
        if (blockDepth > limits.maxDepth) return tooDeep(lineStart + indent, blockDepth);
        i = indent;
      }
      sawContent = true;
      if (documents > limits.maxDocuments) {
        return { ok: false, offset: lineStart, message: `more than ${limits.maxDocuments} documents in one file; split it` };
      }
    }

    if (flow === 0) baseDepth = blockDepth;
    // The characters of the line: quotes, flow brackets, comments, a block scalar header.
    let prevNonBlank = line.slice(0, i).trimEnd().slice(-1);
    for (; i < line.length; i++) {
      const c = line[i];
      if (quote === '"') {
        if (c === '\\') i++;
        else if (c === '"') quote = undefined;
        continue;
      }
      if (quote === "'") {
        if (c === "'") {
          if (line[i + 1] === "'") i++;
          else quote = undefined;
        }
        continue;
      }
      if (isBlank(c)) continue;
      const prev = line[i - 1];
      const atTokenStart = i === 0 || isBlank(prev);
      if (c === '#' && atTokenStart) break;
      if (c === '"' || c === "'") {
        // A quote opens a quoted scalar only where a scalar may start: at the start of the line,
        // after an indicator, or (in flow) right after a bracket or comma. Elsewhere it is part of
        // a plain scalar, like the apostrophe in `description: don't`.
        const afterIndicator = prevNonBlank === '' || ':-?[{,'.includes(prevNonBlank) || /(^|[ \t])[!&][^ \t]*[ \t]+$/.test(line.slice(0, i));
        // In flow, a quote may also follow `:` directly, but only after a JSON-like key ("a":'b').
        const jsonKeyValue = prev === ':' && i >= 2 && `"']}`.includes(line[i - 2]);
        if ((atTokenStart || (flow > 0 && ('[{,'.includes(prev) || jsonKeyValue))) && afterIndicator) quote = c;
      } else if (c === '[' || c === '{') {
        if (flow > 0 || atTokenStart) {
          flow++;
          if (baseDepth + flow > limits.maxDepth) return tooDeep(lineStart + i, baseDepth + flow);
        }
      } else if (c === ']' || c === '}') {
        if (flow > 0) flow--;
      } else if ((c === '|' || c === '>') && flow === 0 && atTokenStart && BLOCK_SCALAR_HEADER.test(line.slice(i))) {
        blockScalarParent = indent;
        break;
      }
      prevNonBlank = c;
    }
    lineStart = lineEnd + 1;
  }
  return { ok: true, documents };
}
