#!/usr/bin/env node
// First: VIPMESH_V8_FLAGS must be set before the other modules are loaded and compiled.
import './v8-flags.js';
import { processContext } from './context.js';
import { run } from './program.js';

const ctx = processContext();
const code = await run(process.argv.slice(2), ctx);
// Daemon commands resolve only when they have shut down; leave the exit to the event loop otherwise
// so pending log lines are flushed.
process.exitCode = code;
