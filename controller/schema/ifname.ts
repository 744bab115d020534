/**
 * The kernel's rules for interface names (net/core/dev.c, dev_valid_name), so that a bad name is
 * refused when the declaration is read, with a reason, instead of as EINVAL from TUNSETIFF later.
 */

/** IFNAMSIZ is 16 including the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;

/**
 * Why `name` cannot be an interface name, or undefined when it can. Beyond the kernel's own rules
 * this refuses '%' (TUNSETIFF treats `tk%d` as a template and picks a number, so the device would
 * not have the declared name) and control characters (legal for the kernel, but they corrupt logs
 * and every tool that prints the name).
 */
export function ifnameProblem(name: string): string | undefined {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0) return 'an interface name cannot be empty';
  if (bytes.length > IFNAME_MAX_BYTES) {
    const chars = [...name].length;
    const unit = chars === bytes.length ? 'characters' : `bytes in UTF-8 (${chars} characters)`;
    return `"${name}" is ${bytes.length} ${unit}; the kernel allows at most ${IFNAME_MAX_BYTES} bytes (IFNAMSIZ 16 with the NUL)`;
  }
  if (name === '.' || name === '..') return `"${name}" is not allowed as an interface name (it names a directory in /sys/class/net)`;
  if (name.includes('/')) return `"${name}" contains '/', which the kernel refuses (names are directories in /sys/class/net)`;
  if (name.includes(':')) return `"${name}" contains ':', which the kernel refuses (it separates old-style alias labels such as eth0:1)`;
  if (name.includes('%')) return `"${name}" contains '%', which TUNSETIFF treats as a template (tk%d becomes tk0, tk1 ...); declare the exact name`;
  for (const [i, byte] of bytes.entries()) {
    // The kernel's isspace(): space, \t \n \v \f \r, and byte 0xA0 (Latin-1 no-break space), which
    // also occurs inside UTF-8 sequences such as U+00A0 and 'à'.
    if (byte === 0x20 || (byte >= 0x09 && byte <= 0x0d) || byte === 0xa0) {
      const what = byte < 0x80 ? 'whitespace' : `a character whose UTF-8 encoding contains byte 0xA0, which the kernel treats as whitespace`;
      return `${JSON.stringify(name)} contains ${what} (byte ${i + 1}); the kernel refuses whitespace in interface names`;
    }
    if (byte < 0x20 || byte === 0x7f) return `${JSON.stringify(name)} contains a control character (byte ${i + 1})`;
  }
  return undefined;
}
