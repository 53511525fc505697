import type { Command } from 'commander';
import { startAnnouncer } from '../../arp/index.js';
import { serveMetrics } from '../../daemon/metrics-http.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { VipmeshError } from '../../errors.js';
import { createRegistry } from '../../metrics.js';
import { DEFAULT_STATE_DIR } from '../../paths.js';
import { parseDuration } from '../../util/duration.js';
import { collect } from '../config.js';
import { type CliContext, daemonCommand } from '../context.js';

interface AnnounceFlags {
  vip?: string[];
  interface?: string[];
  announceSchedule: string;
  refreshInterval: string;
  probeTimeout: string;
  stateDir: string;
  metricsBindAddress?: string;
}

function parseSchedule(text: string): number[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => parseDuration(s, '--announce-schedule'));
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('announce')
    .description('announce VIPs on an interface over ARP/NDP until SIGTERM, without a control plane')
    .option('--vip <ip>', 'a VIP to hold (IPv4 or IPv6; repeatable)', collect)
    .option(
      '--interface <name>',
      'announce on this interface (repeatable); default: every eligible one',
      collect,
    )
    .option(
      '--announce-schedule <list>',
      'gratuitous ARP / unsolicited NA rounds after taking a VIP (durations from the take)',
      '0,200ms,1.1s,3s',
    )
    .option(
      '--refresh-interval <duration>',
      'repeat a gratuitous round this often while holding (0 = off)',
      '0',
    )
    .option(
      '--probe-timeout <duration>',
      'wait this long for another holder before taking a VIP (0 = no probe)',
      '100ms',
    )
    .option(
      '--state-dir <dir>',
      'where changed sysctl values are remembered until restored',
      DEFAULT_STATE_DIR,
    )
    .option('--metrics-bind-address <host:port>', 'serve Prometheus metrics at http://<host:port>/metrics')
    .action(async (flags: AnnounceFlags) => {
      const vips = flags.vip ?? [];
      if (vips.length === 0) {
        throw new VipmeshError('VIPMESH_ARP_BAD_VIP', 'give at least one --vip to announce');
      }
      const log = ctx.logger().child({ module: 'arp' });
      const registry = createRegistry();
      const opts = {
        logger: log,
        registry,
        stateDir: flags.stateDir,
        scheduleMs: parseSchedule(flags.announceSchedule),
        refreshIntervalMs: parseDuration(flags.refreshInterval, '--refresh-interval'),
        probeTimeoutMs: parseDuration(flags.probeTimeout, '--probe-timeout'),
      };
      await runDaemon({
        start: async ({ stack }) => {
          const announcer = await startAnnouncer({
            ...opts,
            ...(flags.interface === undefined ? {} : { interfaces: flags.interface }),
          });
          stack.push('announcer', () => announcer.close());
          if (flags.metricsBindAddress !== undefined) {
            const metrics = await serveMetrics(flags.metricsBindAddress, registry);
            stack.push('metrics', () => metrics.close());
          }
          const results = await Promise.all(vips.map((v) => announcer.hold(v)));
          const held = results.filter((r) => r.held).length;
          if (held === 0) {
            const first = results.find((r) => !r.held);
            throw new VipmeshError(
              'VIPMESH_ARP_CONFLICT',
              `another station answers for every VIP (${first?.held === false ? `${first.conflict.vip} at ${first.conflict.mac}` : ''}); not announcing`,
              { details: { vips } },
            );
          }
          return {
            up: () =>
              log.info({ op: 'ready', vips: announcer.vips, ifaces: announcer.interfaces }, 'announcing'),
            stopping: (sig) => log.info({ op: 'stop', signal: sig }, 'releasing every VIP'),
          };
        },
      });
    });
  daemonCommand(cmd);
}
