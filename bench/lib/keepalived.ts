/**
 * keepalived as the failover peer: one VRRP instance for the VIP on each lab node, run in the node's
 * namespace with its own config and pid files (nothing in /etc or /run is touched).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/index.js';

/** VRRP settings of one run. */
export interface VrrpSettings {
  version: 2 | 3;
  /** Seconds between adverts (keepalived's advert_int; 0.1 needs VRRPv3). */
  advertInt: number;
}

function config(node: string, priority: number, vip: string, s: VrrpSettings): string {
  return `global_defs {
  router_id ${node}
  vrrp_version ${s.version}
  script_user root
  enable_script_security
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority ${priority}
  advert_int ${s.advertInt}
  virtual_ipaddress {
    ${vip}/32 dev eth0
  }
}
`;
}

/** Start keepalived on each node (priorities descending in the given order). */
export function startKeepalived(lab: Lab, nodes: string[], vip: string, s: VrrpSettings): ChildProcess[] {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-keepalived-'));
  return nodes.map((node, i) => {
    const conf = join(dir, `${node}.conf`);
    writeFileSync(conf, config(node, 150 - i * 10, vip, s));
    return lab.spawn(node, [
      'keepalived',
      '--dont-fork',
      '--log-console',
      '--vrrp',
      '--use-file',
      conf,
      '--pid',
      join(dir, `${node}.pid`),
      '--vrrp_pid',
      join(dir, `${node}.vrrp.pid`),
    ]);
  });
}
