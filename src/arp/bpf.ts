/**
 * Classic BPF programs attached to the packet sockets, so the kernel hands us only the frames we
 * handle. The IPv6 socket would otherwise copy every IPv6 frame of the interface (all VIP traffic) to
 * userspace; with the filter it sees Neighbor Solicitations and Advertisements only.
 */
import { endianness } from 'node:os';

// Opcodes from linux/filter.h.
const LD_H_ABS = 0x28;
const LD_B_ABS = 0x30;
const JEQ_K = 0x15;
const RET_K = 0x06;

type Insn = [code: number, jt: number, jf: number, k: number];

/** Serialize instructions as `struct sock_filter[]` in host byte order. */
export function encodeFilter(insns: Insn[]): Buffer {
  const le = endianness() === 'LE';
  const b = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, jt, jf, k], i) => {
    if (le) {
      b.writeUInt16LE(code, i * 8);
      b.writeUInt32LE(k >>> 0, i * 8 + 4);
    } else {
      b.writeUInt16BE(code, i * 8);
      b.writeUInt32BE(k >>> 0, i * 8 + 4);
    }
    b[i * 8 + 2] = jt;
    b[i * 8 + 3] = jf;
  });
  return b;
}

/**
 * Accept IPv6 frames whose next header is ICMPv6 (58) and whose ICMPv6 type is NS (135) or NA (136).
 * NDP messages carry no extension headers in practice; the codec re-checks everything.
 */
export const NDP_FILTER: Insn[] = [
  [LD_H_ABS, 0, 0, 12],
  [JEQ_K, 0, 6, 0x86dd],
  [LD_B_ABS, 0, 0, 20],
  [JEQ_K, 0, 4, 58],
  [LD_B_ABS, 0, 0, 54],
  [JEQ_K, 1, 0, 135],
  [JEQ_K, 0, 1, 136],
  [RET_K, 0, 0, 0xffff],
  [RET_K, 0, 0, 0],
];

/** Accept nothing: for a socket that only sends. */
export const DROP_ALL: Insn[] = [[RET_K, 0, 0, 0]];

/** Run a program over `frame` the way the kernel would (only the opcodes above); for tests. */
export function runFilter(insns: Insn[], frame: Uint8Array): number {
  let a = 0;
  for (let pc = 0; pc < insns.length; ) {
    const [code, jt, jf, k] = insns[pc]!;
    switch (code) {
      case LD_H_ABS:
        if (k + 2 > frame.length) return 0;
        a = (frame[k]! << 8) | frame[k + 1]!;
        pc++;
        break;
      case LD_B_ABS:
        if (k + 1 > frame.length) return 0;
        a = frame[k]!;
        pc++;
        break;
      case JEQ_K:
        pc += 1 + (a === k ? jt : jf);
        break;
      case RET_K:
        return k;
      default:
        throw new Error(`opcode ${code} not emulated`);
    }
  }
  return 0;
}
