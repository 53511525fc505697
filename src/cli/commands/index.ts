import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { register as agent } from './agent.js';
import { register as announce } from './announce.js';
import { register as apply } from './apply.js';
import { register as checkConfig } from './check-config.js';
import { register as del } from './delete.js';
import { register as demo } from './demo.js';
import { register as describe } from './describe.js';
import { register as get } from './get.js';
import { register as kine } from './kine.js';
import { register as server } from './server.js';
import { register as token } from './token.js';
import { register as version } from './version.js';

/** Every subcommand, in the order `vipmesh --help` lists them. Each lives in its own file. */
export function registerCommands(program: Command, ctx: CliContext): void {
  for (const register of [
    server,
    agent,
    announce,
    kine,
    demo,
    checkConfig,
    apply,
    get,
    del,
    describe,
    token,
    version,
  ]) {
    register(program, ctx);
  }
}
