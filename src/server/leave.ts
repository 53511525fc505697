import type { LeaveResult } from '../api/agent-protocol.js';
import type { AssignmentIndex } from '../api/assignments.js';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../log.js';

/** Options of {@link LeaveHandler}. Defaults in brackets. */
interface LeaveHandlerOptions {
  /**
   * Marks the node NotReady with reason AgentStopping (the lifecycle's `leaving`); false when it did not
   * (this server is stopping): then nothing will move, and the answer comes at once.
   */
  markLeaving: (node: string) => Promise<boolean>;
  /** Every VIP's holder as stored; the master's moves arrive here. */
  holders: Pick<AssignmentIndex, 'vipsOf' | 'holder'> & {
    on(event: 'change', fn: () => void): unknown;
    off(event: 'change', fn: () => void): unknown;
  };
  logger: Logger;
  clock?: Clock;
  /**
   * Longest wait for the master to move the node's VIPs, when the agent names none [3 s]; an agent's
   * `timeoutMs` is capped at {@link MAX_WAIT_MS}.
   */
  waitMs?: number;
}

/** The longest an agent may ask the server to wait for the moves. */
const MAX_WAIT_MS = 30_000;

/**
 * A stopping agent's leave request (`vipmesh/leave`): mark its Node NotReady, so the master moves its
 * VIPs at once and places nothing on it again, then answer, once the node holds none of them (or the
 * wait is over), where each one went. The agent keeps answering for its VIPs until it sees each new
 * holder's gratuitous ARP / NA: the hand-over is make-before-break.
 */
export class LeaveHandler {
  readonly #o: LeaveHandlerOptions;
  readonly #clock: Clock;

  constructor(o: LeaveHandlerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  /** Handle `node`'s leave request; `params.timeoutMs` bounds the wait for the moves. */
  async leave(node: string, params: unknown): Promise<LeaveResult> {
    const asked = (params as { timeoutMs?: unknown } | undefined)?.timeoutMs;
    const waitMs =
      typeof asked === 'number' && Number.isFinite(asked) && asked >= 0
        ? Math.min(asked, MAX_WAIT_MS)
        : (this.#o.waitMs ?? 3000);
    const held = [...this.#o.holders.vipsOf(node).keys()];
    this.#o.logger.info({ node, vips: held.length }, 'node asked to leave: moving its VIPs away');
    const moved = this.#movedAway(node, waitMs);
    try {
      if (await this.#o.markLeaving(node)) await moved.done;
    } finally {
      moved.cancel();
    }
    const result: LeaveResult = {
      moved: held.map((vip) => {
        const to = this.#o.holders.holder(vip)?.node;
        return to === undefined || to === node ? { vip } : { vip, node: to };
      }),
    };
    const left = result.moved.filter((m) => this.#o.holders.holder(m.vip)?.node === node).length;
    if (left > 0)
      this.#o.logger.warn({ node, vips: left }, 'node left with VIPs the master did not move in time');
    return result;
  }

  /** Resolves once `node` holds no VIP, or after `waitMs`. */
  #movedAway(node: string, waitMs: number): { done: Promise<void>; cancel: () => void } {
    const h = this.#o.holders;
    let finish = (): void => undefined;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const check = (): void => {
      if (h.vipsOf(node).size === 0) finish();
    };
    const timer = this.#clock.setTimeout(finish, waitMs);
    h.on('change', check);
    check();
    return {
      done,
      cancel: () => {
        this.#clock.clearTimeout(timer);
        h.off('change', check);
      },
    };
  }
}
