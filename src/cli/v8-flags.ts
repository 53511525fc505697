import { setFlagsFromString } from 'node:v8';

/** The environment variable whose V8 flags `vipmesh` sets before it loads anything else. */
export const V8_FLAGS_ENV = 'VIPMESH_V8_FLAGS';

/**
 * Set the V8 flags named in `VIPMESH_V8_FLAGS` (space-separated, e.g. `--no-opt`), for the flags node
 * refuses in NODE_OPTIONS. The systemd units set `--heap-growing-percent=50` (the old generation grows to
 * 1.5 times what a full collection kept, not up to 4 times). `--no-opt` (no optimizing compiler) cuts 5-20
 * MiB of RSS but doubled the daemons' CPU time (docs/memory.md), so it is for memory-starved hosts that
 * `/etc/default/vipmesh-agent` opts in. V8 itself reports a flag it does not know, on stderr, and goes on.
 * Returns the flags given ('' for none).
 */
export function applyV8Flags(
  env: NodeJS.ProcessEnv = process.env,
  set: (flags: string) => void = setFlagsFromString,
): string {
  const flags = (env[V8_FLAGS_ENV] ?? '').trim();
  if (flags !== '') set(flags);
  return flags;
}

// On import: main.ts imports this module first, so the flags hold for every module compiled after it.
applyV8Flags();
