/** Option parsers shared by the commands (commander calls them with the flag's text). */

/** A whole number within [min, max]; the error names the flag and what it takes. */
export function integerOption(flag: string, min: number, max: number, what = 'an integer'): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new Error(`${flag} must be ${what} ${min}..${max}, got ${JSON.stringify(text)}`);
    return n;
  };
}

export const parseRouteProtocol = integerOption('--route-protocol', 1, 255);
