/**
 * `kubectl get` tables read by column: cells may be empty (a printer column whose JSONPath finds
 * nothing, e.g. READY before any status is written), so a row cannot be split on blanks. Columns
 * start where the header's names start.
 */
export function kubectlTable(text: string): Array<Record<string, string>> {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift() ?? '';
  const starts = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index! }));
  return lines.map((line) => Object.fromEntries(starts.map((c, i) => [c.name, line.slice(c.at, starts[i + 1]?.at ?? line.length).trim()])));
}

/** The header's column names. */
export const kubectlHeader = (text: string): string[] => (text.split('\n')[0] ?? '').trim().split(/\s+/);
