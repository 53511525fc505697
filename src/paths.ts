/**
 * The default locations on the host, each written once here and imported by the flags and the modules
 * that fall back to it.
 */

/** State kept across restarts: the embedded datastore, CA, certificates, tokens, node password (`--data-dir`). */
export const DEFAULT_DATA_DIR = '/var/lib/vipmesh';

/** Runtime state gone at reboot: the sysctl originals to restore (`--state-dir`). */
export const DEFAULT_STATE_DIR = '/run/vipmesh';
