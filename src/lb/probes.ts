/**
 * The two real probes: a TCP connect, and an HTTP GET with an accepted status range. Each settles once,
 * and an abort (the checker's timeout) destroys its socket at once, so a slow endpoint holds at most the
 * one socket of its one check in flight.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import type { HealthCheck } from './types.js';

/** What one check is run against. */
export interface ProbeTarget {
  ip: string;
  port: number;
  check: HealthCheck;
}

/** Resolves when the endpoint is healthy; rejects with an Error whose message says why it is not. */
export type Probe = (t: ProbeTarget, signal: AbortSignal) => Promise<void>;

/** TCP connect to ip:port; the connection is closed as soon as it is up. */
export const tcpProbe: Probe = (t, signal) =>
  new Promise((resolve, reject) => {
    const s = connect({ host: t.ip, port: t.port, noDelay: true });
    const stop = () => s.destroy();
    signal.addEventListener('abort', stop, { once: true });
    s.once('connect', () => {
      signal.removeEventListener('abort', stop);
      s.destroy();
      resolve();
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', stop);
      reject(new Error(`connect ${e.code ?? e.message}`));
    });
    s.once('close', () => {
      signal.removeEventListener('abort', stop);
      reject(new Error('aborted'));
    });
  });

/** HTTP GET of `check.path`; healthy when the status is within `check.expectStatus`. */
export const httpProbe: Probe = (t, signal) =>
  new Promise((resolve, reject) => {
    const req = request({
      host: t.ip,
      port: t.port,
      path: t.check.path,
      method: 'GET',
      agent: false,
      signal,
      headers: { 'user-agent': 'vipmesh-health-check', connection: 'close' },
    });
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      req.destroy();
      const [lo, hi] = t.check.expectStatus;
      if (status >= lo && status <= hi) resolve();
      else reject(new Error(`HTTP ${status}`));
    });
    req.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.name === 'AbortError' ? 'aborted' : `connect ${e.code ?? e.message}`)),
    );
    req.end();
  });

/** The probe for a check type (`none` never runs a probe). */
export const probeFor: Probe = (t, signal) =>
  t.check.type === 'http' ? httpProbe(t, signal) : tcpProbe(t, signal);
