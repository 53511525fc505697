// The namespace lab lives in src/lab (the demo uses it too); tests import it from here.
export * from '../../src/lab/index.js';
