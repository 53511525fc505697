/**
 * The little of HPACK (RFC 7541) that the datastore needs to read the first header block of a connection:
 * prefixed integers, string literals (raw or Huffman-coded) and the representation of each field.
 */

/**
 * The Huffman code's length in bits for each symbol 0..256 (256 is EOS), from RFC 7541 Appendix B, one
 * character per symbol: `A` is 5 bits, `B` 6, and so on. The code is canonical (codes of one length are
 * consecutive, in symbol order, shorter codes first), so the lengths define it.
 */
const CODE_LENGTHS =
  'ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIX' +
  'PRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ';

const EOS = 256;

/** Code (as `length:bits`) -> symbol, built once from the lengths. */
const DECODE = new Map<string, number>();
{
  const symbols = [...Array(257).keys()].map((s) => ({ s, len: CODE_LENGTHS.charCodeAt(s) - 60 }));
  symbols.sort((a, b) => a.len - b.len || a.s - b.s);
  let code = 0;
  let len = symbols[0]?.len ?? 0;
  for (const [i, { s, len: l }] of symbols.entries()) {
    if (i > 0) code = (code + 1) * 2 ** (l - len);
    len = l;
    DECODE.set(`${l}:${code}`, s);
  }
}

/** Decode a Huffman-coded string literal; undefined when it is not valid HPACK Huffman. */
export function huffmanDecode(bytes: Uint8Array): Buffer | undefined {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const s = DECODE.get(`${len}:${code}`);
      if (s === undefined) {
        if (len > 30) return undefined;
        continue;
      }
      if (s === EOS) return undefined;
      out.push(s);
      code = 0;
      len = 0;
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (len > 7 || code !== 2 ** len - 1) return undefined;
  return Buffer.from(out);
}

/** An HPACK integer with an N-bit prefix at `buf[at]`: its value and the offset after it. */
export function readInt(buf: Uint8Array, at: number, prefixBits: number): { value: number; next: number } {
  const max = 2 ** prefixBits - 1;
  if (at >= buf.length) throw new RangeError('truncated integer');
  let value = (buf[at] as number) & max;
  let next = at + 1;
  if (value < max) return { value, next };
  let shift = 0;
  for (;;) {
    if (next >= buf.length || shift > 28) throw new RangeError('truncated or oversized integer');
    const b = buf[next++] as number;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return { value, next };
  }
}

/** The HPACK integer `value` with an N-bit prefix, `flags` in the bits above the prefix. */
export function writeInt(value: number, prefixBits: number, flags: number): Buffer {
  const max = 2 ** prefixBits - 1;
  if (value < max) return Buffer.from([flags | value]);
  const out = [flags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A string literal at `buf[at]`: where it starts and ends, and its bytes, decoded only when `decode`. */
export function readString(
  buf: Uint8Array,
  at: number,
  decode = true,
): { start: number; next: number; text: Buffer } {
  if (at >= buf.length) throw new RangeError('truncated string');
  const huffman = ((buf[at] as number) & 0x80) !== 0;
  const { value: len, next: body } = readInt(buf, at, 7);
  const next = body + len;
  if (next > buf.length) throw new RangeError('truncated string');
  const raw = buf.subarray(body, next);
  if (!decode) return { start: at, next, text: Buffer.alloc(0) };
  const text = huffman ? huffmanDecode(raw) : Buffer.from(raw);
  if (text === undefined) throw new RangeError('invalid Huffman string');
  return { start: at, next, text };
}

/** A string literal's place in a header block (its length prefix to its end) and its decoded bytes. */
export interface StringLiteral {
  start: number;
  next: number;
  text: Buffer;
}

/** `:authority`'s index in the static table (RFC 7541 Appendix A). */
const STATIC_AUTHORITY = 1;

/**
 * The values of the literal `:authority` fields of a header block, in order: those whose name is static
 * index 1 or written out. A name indexed in the dynamic table is not looked up (in a connection's first
 * block that table is empty). Throws RangeError on a block that is cut short or malformed.
 */
export function authorityLiterals(block: Uint8Array): StringLiteral[] {
  const out: StringLiteral[] = [];
  let at = 0;
  while (at < block.length) {
    const b = block[at] as number;
    if (b & 0x80) {
      at = readInt(block, at, 7).next;
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      at = readInt(block, at, 5).next;
      continue;
    }
    // 01xxxxxx: with incremental indexing (6-bit index); 0000xxxx / 0001xxxx: without / never (4-bit).
    const { value: index, next } = readInt(block, at, (b & 0x40) !== 0 ? 6 : 4);
    let authority = index === STATIC_AUTHORITY;
    at = next;
    if (index === 0) {
      const n = readString(block, at);
      authority = n.text.toString('latin1') === ':authority';
      at = n.next;
    }
    const value = readString(block, at, authority);
    at = value.next;
    if (authority) out.push(value);
  }
  return out;
}
