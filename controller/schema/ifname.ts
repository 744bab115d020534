/**
 * The kernel's rules for interface names (net/core/dev.c, dev_valid_name), so that a bad name is
 * refused when the declaration is read, with a reason, instead of as EINVAL from TUNSETIFF later.
 */

/** IFNAMSIZ is 16 including the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;

/** Unicode controls (C0, DEL, C1) and format characters (bidi overrides, zero-width joiners, BOM, soft hyphen). */
const INVISIBLE = /[\p{Cc}\p{Cf}]/gu;
const IS_INVISIBLE = /^[\p{Cc}\p{Cf}]$/u;

/** Longest part of a refused name that messages repeat: a hostile 100,000-character name is not echoed whole. */
const SHOWN_CHARS = 40;

/**
 * A name as messages show it: in double quotes, invisible characters escaped (so "tk-\u202e0" cannot
 * print as a different name in a log or `kubectl describe`), and cut after SHOWN_CHARS characters.
 */
export function showName(name: string): string {
  const chars = [...name];
  const kept = chars.length > SHOWN_CHARS ? chars.slice(0, SHOWN_CHARS).join('') : name;
  const escaped = JSON.stringify(kept).replace(INVISIBLE, (c) => {
    const hex = (c.codePointAt(0) as number).toString(16);
    return hex.length > 4 ? `\\u{${hex}}` : `\\u${hex.padStart(4, '0')}`;
  });
  return chars.length > SHOWN_CHARS ? `${escaped}... (${chars.length} characters)` : escaped;
}

/**
 * Why `name` cannot be an interface name, or undefined when it can. Beyond the kernel's own rules
 * this refuses '%' (TUNSETIFF treats `tk%d` as a template and picks a number, so the device would
 * not have the declared name), control characters and Unicode format characters such as U+202E
 * RIGHT-TO-LEFT OVERRIDE (legal for the kernel, but they corrupt logs and make every tool that
 * prints the name show something else: `ip link` would list "tk-\u202e0ab" as "tk-ba0").
 */
export function ifnameProblem(name: string): string | undefined {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0) return 'an interface name cannot be empty';
  const shown = showName(name);
  if (bytes.length > IFNAME_MAX_BYTES) {
    const chars = [...name].length;
    const unit = chars === bytes.length ? 'characters' : `bytes in UTF-8 (${chars} characters)`;
    return `${shown} is ${bytes.length} ${unit}; the kernel allows at most ${IFNAME_MAX_BYTES} bytes (IFNAMSIZ 16 with the NUL)`;
  }
  if (name === '.' || name === '..') return `${shown} is not allowed as an interface name (it names a directory in /sys/class/net)`;
  if (name.includes('/')) return `${shown} contains '/', which the kernel refuses (names are directories in /sys/class/net)`;
  if (name.includes(':')) return `${shown} contains ':', which the kernel refuses (it separates old-style alias labels such as eth0:1)`;
  if (name.includes('%')) return `${shown} contains '%', which TUNSETIFF treats as a template (tk%d becomes tk0, tk1 ...); declare the exact name`;
  for (const [i, byte] of bytes.entries()) {
    // The kernel's isspace(): space, \t \n \v \f \r, and byte 0xA0 (Latin-1 no-break space), which
    // also occurs inside UTF-8 sequences such as U+00A0 and 'à'.
    if (byte === 0x20 || (byte >= 0x09 && byte <= 0x0d) || byte === 0xa0) {
      const what = byte < 0x80 ? 'whitespace' : `a character whose UTF-8 encoding contains byte 0xA0, which the kernel treats as whitespace`;
      return `${shown} contains ${what} (byte ${i + 1}); the kernel refuses whitespace in interface names`;
    }
    if (byte < 0x20 || byte === 0x7f) return `${shown} contains a control character (byte ${i + 1})`;
  }
  const chars = [...name];
  const invisible = chars.findIndex((c) => IS_INVISIBLE.test(c));
  if (invisible >= 0) {
    const code = (chars[invisible] as string).codePointAt(0) as number;
    return `${shown} contains U+${code.toString(16).toUpperCase().padStart(4, '0')} (character ${invisible + 1}), an invisible control or format character that would make tools print a different name`;
  }
  return undefined;
}
