import { VipmeshError } from '../../errors.js';

/** The action of a subcommand whose issue has not landed yet: a clear error, never a silent no-op. */
export function notBuilt(name: string, issue: string): () => never {
  return () => {
    throw new VipmeshError('VIPMESH_NOT_BUILT', `"vipmesh ${name}" is not built yet (${issue})`);
  };
}
