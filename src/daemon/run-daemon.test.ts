import { EventEmitter } from 'node:events';
import t from 'tap';
import { type DaemonUp, runDaemon, type SignalSource, STOP_SIGNALS, untilSignal } from './run-daemon.js';

/** A process stand-in: signals are emitted by the test. */
function fakeSignals(): SignalSource & { emit(sig: NodeJS.Signals): void; listeners(): number } {
  const ee = new EventEmitter();
  return {
    on: (sig, fn) => ee.on(sig, fn),
    off: (sig, fn) => ee.off(sig, fn),
    emit: (sig) => ee.emit(sig, sig),
    listeners: () => STOP_SIGNALS.reduce((n, s) => n + ee.listenerCount(s), 0),
  };
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  t.test(
    `${sig} stops a running daemon cleanly: ready, up, stopping, then every part closed in reverse`,
    async (t) => {
      const signals = fakeSignals();
      const events: string[] = [];
      let up!: () => void;
      const isUp = new Promise<void>((r) => (up = r));
      const done = runDaemon({
        signals,
        notifyReady: async (status) => events.push(`READY=1 ${status}`),
        start: async ({ stack }) => {
          stack.push('announcer', async () => events.push('close announcer'));
          stack.push('metrics', () => events.push('close metrics'));
          return {
            readyStatus: 'serving',
            up: () => {
              events.push('up');
              up();
            },
            stopping: (s) => events.push(`stopping on ${s}`),
          } satisfies DaemonUp;
        },
      });
      await isUp;
      t.equal(signals.listeners(), STOP_SIGNALS.length, 'one listener per stop signal while running');
      signals.emit(sig);
      await done;
      t.same(events, ['READY=1 serving', 'up', `stopping on ${sig}`, 'close metrics', 'close announcer']);
      t.equal(signals.listeners(), 0, 'no listener left');
    },
  );
}

t.test('a signal during the start: no readiness, everything started is closed', async (t) => {
  const signals = fakeSignals();
  const events: string[] = [];
  await runDaemon({
    signals,
    notifyReady: async () => events.push('READY=1'),
    start: async ({ signal, stack }) => {
      stack.push('agent', () => events.push('close agent'));
      signals.emit('SIGHUP');
      return { stoppedBy: await signal };
    },
  });
  t.same(events, ['close agent']);
  t.equal(signals.listeners(), 0);
});

t.test(
  'a failed start closes what it started and rethrows; a daemon without readyStatus sends none',
  async (t) => {
    const signals = fakeSignals();
    const events: string[] = [];
    await t.rejects(
      runDaemon({
        signals,
        notifyReady: async () => events.push('READY=1'),
        start: async ({ stack }) => {
          stack.push('announcer', () => events.push('close announcer'));
          throw new Error('conflict');
        },
      }),
      { message: 'conflict' },
    );
    t.same(events, ['close announcer']);
    t.equal(signals.listeners(), 0);

    const quiet = runDaemon({
      signals,
      notifyReady: async () => events.push('READY=1'),
      start: async () => ({ up: () => signals.emit('SIGTERM'), stopping: () => events.push('stopping') }),
    });
    await quiet;
    t.same(events, ['close announcer', 'stopping'], 'no READY=1 without a readyStatus');
  },
);

t.test('a close that fails does not stop the others; its error is thrown at the end', async (t) => {
  const signals = fakeSignals();
  const closed: string[] = [];
  await t.rejects(
    runDaemon({
      signals,
      notifyReady: async () => undefined,
      start: async ({ stack }) => {
        stack.push('server', () => closed.push('server'));
        stack.push('agent', () => {
          throw new Error('agent close failed');
        });
        return { up: () => signals.emit('SIGINT'), stopping: () => undefined };
      },
    }),
    { message: 'agent close failed' },
  );
  t.same(closed, ['server']);
});

t.test('untilSignal: the first stop signal wins; dispose stops listening', async (t) => {
  const signals = fakeSignals();
  const { signal, dispose } = untilSignal(signals);
  signals.emit('SIGHUP');
  signals.emit('SIGTERM');
  t.equal(await signal, 'SIGHUP');
  dispose();
  t.equal(signals.listeners(), 0);
});
