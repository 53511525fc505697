import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { notifyReady } from './sd-notify.js';

t.test('no NOTIFY_SOCKET: nothing is sent', async (t) => {
  t.equal(await notifyReady('serving', {}), false);
});

t.test('READY=1 reaches the notify socket', async (t) => {
  // Node cannot bind a unix datagram socket; python3 plays systemd's side of NOTIFY_SOCKET, as systemd does
  // it: print each message, and answer systemd-notify's BARRIER=1 by closing the file descriptor it passes
  // (systemd-notify waits for that, and fails when the receiver is gone before it).
  const path = join(mkdtempSync(join(tmpdir(), 'vipmesh-notify-')), 'notify.sock');
  const receiver = spawn(
    'python3',
    [
      '-c',
      [
        'import os,socket,sys,array',
        's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)',
        's.bind(sys.argv[1])',
        'print("bound",flush=True)',
        's.settimeout(10)',
        'while True:',
        '  msg,anc,_,_=s.recvmsg(4096,socket.CMSG_SPACE(16))',
        '  for lvl,typ,data in anc:',
        '    if lvl==socket.SOL_SOCKET and typ==socket.SCM_RIGHTS:',
        '      for fd in array.array("i",data[:len(data)-len(data)%4]): os.close(fd)',
        '  print(msg.decode(),flush=True)',
        '  if b"BARRIER=1" in msg: break',
      ].join('\n'),
      path,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => receiver.kill());
  // Listen for the exit now: the receiver may be gone before notifyReady returns.
  const exited = new Promise((resolve) => receiver.once('exit', resolve));
  let out = '';
  await new Promise<void>((resolve) =>
    receiver.stdout.on('data', (d) => {
      out += d;
      if (out.includes('bound')) resolve();
    }),
  );
  const sent = await notifyReady('serving', { ...process.env, NOTIFY_SOCKET: path });
  t.equal(sent, true);
  await exited;
  t.match(out, /READY=1/);
  t.match(out, /STATUS=serving/);
});

t.test('a NOTIFY_SOCKET that is not there is a false, not a crash', async (t) => {
  t.equal(await notifyReady('serving', { ...process.env, NOTIFY_SOCKET: '/nonexistent/notify.sock' }), false);
});
