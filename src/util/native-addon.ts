/**
 * The one place that finds vipmesh's native addon, built from src/arp/native/packet.cc (AF_PACKET sockets)
 * and src/tunnel/native/liveness.cc (the liveness thread): build/Release/packet.node when node-gyp compiled it
 * on this machine, else the prebuilt prebuilds/linux-<arch>/packet.node shipped in the package (see
 * scripts/prebuild.mjs). Each module that uses a class of it wraps a failure in its own error.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon could not be loaded from any of `candidates`. */
export class NativeAddonMissing extends Error {
  constructor(
    readonly candidates: string[],
    cause: unknown,
  ) {
    super(
      `the native addon is not built and no prebuilt one fits ${process.platform}-${process.arch} ` +
        `(looked for ${candidates.join(', ')}; run npm ci or npx node-gyp rebuild)`,
      { cause },
    );
  }
}

let addon: unknown;

/** The package root: the nearest folder above this file holding package.json (works from src/ and dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return dir;
}

/**
 * Where the addon is looked for, in order: a local compile (the most specific to this machine, and what a
 * developer who edits the C++ gets), then the prebuilt binary for this platform and `arch` (process.arch:
 * x64, arm64, or arm for armv7).
 */
function candidates(root: string, arch: string = process.arch): string[] {
  return [
    join(root, 'build', 'Release', 'packet.node'),
    join(root, 'prebuilds', `${process.platform}-${arch}`, 'packet.node'),
  ];
}

/** The addon's exports, loaded once. Throws {@link NativeAddonMissing}. */
export function nativeAddon<T>(): T {
  if (addon !== undefined) return addon as T;
  const paths = candidates(packageRoot());
  const path = paths.find((p) => existsSync(p)) ?? paths[0]!;
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (err) {
    throw new NativeAddonMissing(paths, err);
  }
  return addon as T;
}
