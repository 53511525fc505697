import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The argv that runs a sibling script of this folder with the current node: `dist/lab/x.js` when running
 * compiled, or `src/lab/x.ts` through tsx when running from source (tests, benchmarks).
 */
export function labScript(name: string): string[] {
  const js = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (existsSync(js)) return [process.execPath, js];
  const ts = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  return [process.execPath, '--import', 'tsx', ts];
}

/**
 * The argv that runs the vipmesh CLI the same way (compiled or through tsx). `VIPMESH_LAB_CLI` names a
 * compiled main.js to use instead (the benchmarks measure the compiled program, not tsx).
 */
export function vipmeshCli(): string[] {
  const forced = process.env['VIPMESH_LAB_CLI'];
  if (forced !== undefined && forced !== '') return [process.execPath, forced];
  const js = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  if (existsSync(js)) return [process.execPath, js];
  return [process.execPath, '--import', 'tsx', fileURLToPath(new URL('../cli/main.ts', import.meta.url))];
}
