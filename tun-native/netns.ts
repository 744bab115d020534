/** `--netns NAME` means /run/netns/NAME (as `ip netns add` makes it); anything with a slash is a path. */
export function netnsPath(nameOrPath: string): string {
  if (nameOrPath.length === 0) throw new TypeError('empty network namespace name');
  return nameOrPath.includes('/') ? nameOrPath : `/run/netns/${nameOrPath}`;
}
