import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerVerb } from './cordon.js';

/** `vipmesh uncordon NODE...`: clear the Nodes' `spec.unschedulable` (see cordon.ts). */
export function register(program: Command, ctx: CliContext): void {
  registerVerb(program, ctx, 'uncordon');
}
