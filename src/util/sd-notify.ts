import { spawn } from 'node:child_process';

/**
 * Tell systemd the service is ready (Type=notify). Node has no unix datagram sockets, so this runs
 * `systemd-notify --ready`; the units set NotifyAccess=all because that helper is a child process.
 * Outside systemd (no NOTIFY_SOCKET) it does nothing. Resolves to whether a notification was sent.
 */
export function notifyReady(status?: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (env['NOTIFY_SOCKET'] === undefined || env['NOTIFY_SOCKET'] === '') return Promise.resolve(false);
  const args = ['--ready', `--pid=${process.pid}`];
  if (status !== undefined) args.push(`--status=${status}`);
  return new Promise((resolve) => {
    const child = spawn('systemd-notify', args, { stdio: 'ignore', env });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}
