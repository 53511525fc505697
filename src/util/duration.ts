import { VipmeshError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parse a Go-style duration (`100ms`, `1.5s`, `2m`, `1h30m`) or a bare number of milliseconds into ms.
 * `what` names the flag or field in the error.
 */
export function parseDuration(text: string | number, what: string): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text >= 0) return text;
    throw new VipmeshError('VIPMESH_BAD_DURATION', `${what}: ${text} is not a duration`);
  }
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) break;
    total += Number(m[1]) * UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length || s.length === 0) {
    throw new VipmeshError(
      'VIPMESH_BAD_DURATION',
      `${what}: "${text}" is not a duration (examples: 100ms, 2s, 1m)`,
    );
  }
  return total;
}
