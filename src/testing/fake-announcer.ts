import { EventEmitter } from 'node:events';
import type { AgentAnnouncer } from '../agent/index.js';

/** An announcer that only remembers what it holds: for agents in loopback tests (no packets, no root). */
export class FakeAnnouncer extends EventEmitter implements AgentAnnouncer {
  readonly held = new Set<string>();
  async hold(vip: string): Promise<{ held: boolean }> {
    this.held.add(vip);
    return { held: true };
  }
  async release(vip: string): Promise<boolean> {
    return this.held.delete(vip);
  }
  async probe(): Promise<{ answered: boolean }> {
    return { answered: false };
  }
  get vips(): string[] {
    return [...this.held];
  }
  async close(): Promise<void> {
    this.held.clear();
  }
}
