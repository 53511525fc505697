/**
 * Resolve on the first SIGTERM or SIGINT (with the signal's name); `dispose()` stops listening. The
 * daemon commands await it, then shut down in order (release VIPs, close sockets, flush the datastore).
 */
export function untilSignal(): { signal: Promise<string>; dispose(): void } {
  let on: (sig: string) => void = () => undefined;
  const signal = new Promise<string>((resolve) => {
    on = (sig: string) => resolve(sig);
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  return {
    signal,
    dispose: () => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
    },
  };
}
