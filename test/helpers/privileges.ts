export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';
