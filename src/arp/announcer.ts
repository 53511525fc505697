/**
 * The announcer: holds VIPs (address on lo, answers on the ports, gratuitous rounds on a schedule),
 * releases them, probes for other holders and raises conflicts. Layers below come in through
 * {@link AnnouncerDeps}; `startAnnouncer()` (index.ts) wires the production stack.
 */
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../clock.js';
import { VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../metrics.js';
import { formatIpBytes, type IpAddr } from '../util/ip.js';
import { formatMac, multicastMac, parseVip, solicitedNode } from './addr.js';
import { arpProbe, gratuitousArp, sameBytes } from './codec.js';
import { ArpMetrics } from './metrics.js';
import { ndpProbe, unsolicitedNa } from './ndp.js';
import type { AddressTable, LinkInfo, LinkSource } from './netlink.js';
import { eligible, type OpenPort, type PortSockets } from './ports.js';
import { type PortInfo, Responder } from './responder.js';

/**
 * Gratuitous rounds after taking a VIP, in ms from the take: at once, again 200 ms later (a lost frame),
 * then past the kernel's neighbour `locktime` (default 1 s: an ARP update within 1 s of the previous one is
 * ignored, so the 1.1 s round lands even when the old holder answered just before it stopped), and a last
 * one at 3 s.
 */
const DEFAULT_SCHEDULE_MS: readonly number[] = [0, 200, 1100, 3000];

/** Tuning of an {@link Announcer}. */
export interface AnnouncerOptions {
  /** Interfaces to announce on; default: every eligible interface (see `eligible()`), followed live. */
  interfaces?: string[];
  /** Gratuitous round offsets in ms; default {@link DEFAULT_SCHEDULE_MS}. */
  scheduleMs?: readonly number[];
  /** Repeat a gratuitous round this often (ms) while holding, for switches that age out MACs; 0 (default) = off. */
  refreshIntervalMs?: number;
  /** How long a probe waits for another holder, in ms; default 100. 0 turns probing before a take off. */
  probeTimeoutMs?: number;
  /** Probe frames per probe, spread over the timeout; default 2. */
  probeCount?: number;
}

/** The layers an Announcer drives (injected, so tests pass fakes). */
interface AnnouncerDeps {
  links: LinkSource;
  addresses: AddressTable;
  sysctl: { apply(ifname: string): void; restore(ifname: string): void; restoreAll(): void };
  openPort: OpenPort;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

/** Another MAC answers for or claims a VIP. */
export interface ConflictEvent {
  vip: string;
  mac: string;
  iface: string;
  /** `probe`: found before taking the VIP (not taken); `holding`: seen while we hold it. */
  phase: 'probe' | 'holding';
}

/** What probing a VIP found. */
type ProbeResult = { answered: false } | { answered: true; mac: string; iface: string };

/** The result of {@link Announcer.hold}. */
type HoldResult = { held: true } | { held: false; conflict: ConflictEvent };

/** Typed events of an Announcer. */
interface AnnouncerEvents {
  conflict: [ConflictEvent];
  held: [{ vip: string }];
  released: [{ vip: string }];
  'interface-up': [{ iface: string; mac: string }];
  'interface-down': [{ iface: string }];
}

interface Port extends PortSockets {
  info: PortInfo;
  index: number;
  responder: Responder;
}

interface Held {
  ip: IpAddr;
  iface: string | undefined;
  timers: TimerHandle[];
  lastConflictLog: number;
}

interface Probe {
  iface: string | undefined;
  done(r: ProbeResult): void;
}

/** ARP/NDP announcer for the VIPs this node holds. */
export class Announcer extends EventEmitter<AnnouncerEvents> {
  readonly #d: AnnouncerDeps;
  readonly #log: Logger;
  readonly #metrics: ArpMetrics;
  readonly #scheduleMs: readonly number[];
  readonly #refreshIntervalMs: number;
  readonly #probeTimeoutMs: number;
  readonly #probeCount: number;
  readonly #explicit: string[] | undefined;
  readonly #ports = new Map<string, Port>();
  readonly #held = new Map<string, Held>();
  /** Reply frames of this turn's first rounds, sent at its end (see {@link #round}). */
  #replies: Array<{ h: Held; p: Port; frame: Buffer }> = [];
  readonly #taking = new Map<string, Promise<HoldResult>>();
  readonly #probes = new Map<string, Set<Probe>>();
  #closed = false;
  #syncing: Promise<void> | undefined;
  #resync = false;

  constructor(deps: AnnouncerDeps, opts: AnnouncerOptions = {}) {
    super();
    this.#d = deps;
    this.#log = deps.logger;
    this.#metrics = new ArpMetrics(deps.registry);
    this.#scheduleMs = opts.scheduleMs ?? DEFAULT_SCHEDULE_MS;
    this.#refreshIntervalMs = opts.refreshIntervalMs ?? 0;
    this.#probeTimeoutMs = opts.probeTimeoutMs ?? 100;
    this.#probeCount = Math.max(1, opts.probeCount ?? 2);
    this.#explicit = opts.interfaces?.length ? [...opts.interfaces] : undefined;
  }

  /**
   * Remove VIPs an earlier run left on lo, open the ports and follow link changes. Throws
   * VIPMESH_ARP_NO_INTERFACE when an explicitly named interface does not exist, and the socket's error
   * (VIPMESH_ARP_PERMISSION without CAP_NET_RAW) when a port cannot be opened.
   */
  async start(): Promise<void> {
    const stale = await this.#d.addresses.listOurs();
    for (const ip of stale) {
      await this.#d.addresses.remove(ip);
      this.#log.info({ op: 'cleanup', ip: ip.text }, 'removed a VIP an earlier run left on lo');
    }
    const links = await this.#d.links.list();
    for (const name of this.#explicit ?? []) {
      if (!links.some((l) => l.name === name)) {
        throw new VipmeshError('VIPMESH_ARP_NO_INTERFACE', `interface ${name} does not exist`, {
          details: { iface: name },
        });
      }
    }
    this.#apply(links, true);
    this.#d.links.subscribe(() => this.#onLinkChange());
  }

  /** Names of the interfaces currently announced on. */
  get interfaces(): string[] {
    return [...this.#ports.keys()];
  }

  /** VIPs currently held (canonical text). */
  get vips(): string[] {
    return [...this.#held.keys()];
  }

  /** True when this node answers for `ip` (canonical text) on `ifname`: the responder's decision. */
  shouldAnnounce(ip: string, ifname: string): boolean {
    const h = this.#held.get(ip);
    return h !== undefined && (h.iface === undefined || h.iface === ifname);
  }

  #onLinkChange(): void {
    if (this.#closed) return;
    if (this.#syncing !== undefined) {
      this.#resync = true;
      return;
    }
    this.#syncing = (async () => {
      do {
        this.#resync = false;
        try {
          this.#apply(await this.#d.links.list(), false);
        } catch (err) {
          this.#log.error({ op: 'links', err }, 'following link changes failed');
        }
      } while (this.#resync && !this.#closed);
      this.#syncing = undefined;
    })();
  }

  #apply(links: LinkInfo[], initial: boolean): void {
    if (this.#closed) return;
    const want = new Map(links.filter((l) => eligible(l, this.#explicit)).map((l) => [l.name, l]));
    for (const [name, port] of this.#ports) {
      const l = want.get(name);
      if (l === undefined || l.index !== port.index) this.#closePort(name, port);
    }
    for (const link of want.values()) {
      const port = this.#ports.get(link.name);
      if (port === undefined) {
        try {
          this.#openPort(link);
        } catch (err) {
          if (initial) throw err;
          this.#log.error({ op: 'open', iface: link.name, err }, 'cannot announce on a new interface');
        }
        continue;
      }
      if (!sameBytes(port.info.mac, link.mac)) {
        this.#log.info({ op: 'mac', iface: link.name, mac: formatMac(link.mac) }, 'interface MAC changed');
        port.info.mac = Buffer.from(link.mac);
        for (const h of this.#held.values())
          if (h.iface === undefined || h.iface === link.name) this.#round(h, port);
      }
    }
  }

  #openPort(link: LinkInfo): void {
    const info: PortInfo = { name: link.name, mac: Buffer.from(link.mac) };
    const hooks = {
      shouldAnnounce: (ip: string, ifname: string) => this.shouldAnnounce(ip, ifname),
      claimed: (ip: string, mac: Buffer, ifname: string) => this.#claimed(ip, mac, ifname),
      isOwnMac: (mac: Buffer) => this.#isOwnMac(mac),
    };
    let responder: Responder | undefined;
    const guard = (family: '4' | '6', fn: (r: Responder) => ReturnType<Responder['handleArp']>) => {
      if (responder === undefined) return;
      try {
        this.#metrics.count(fn(responder), family, link.name);
      } catch (err) {
        this.#log.error({ op: 'respond', iface: link.name, err }, 'sending an answer failed');
      }
    };
    // Sockets first: without CAP_NET_RAW the error names that, not the sysctl it would fail on next.
    const sockets = this.#d.openPort(
      info,
      (f, t) => guard('4', (r) => r.handleArp(f, t)),
      (f, t) => guard('6', (r) => r.handleNdp(f, t)),
    );
    try {
      this.#d.sysctl.apply(link.name);
    } catch (err) {
      sockets.arp.close();
      sockets.ndp.close();
      sockets.mld?.close();
      throw err;
    }
    responder = new Responder(info, sockets.arp, sockets.ndp, hooks);
    const port: Port = { ...sockets, info, index: link.index, responder };
    this.#ports.set(link.name, port);
    this.#log.info({ op: 'port', iface: link.name, mac: formatMac(info.mac) }, 'announcing on interface');
    this.emit('interface-up', { iface: link.name, mac: formatMac(info.mac) });
    for (const h of this.#held.values()) {
      if (h.iface !== undefined && h.iface !== link.name) continue;
      if (h.ip.family === 6) this.#join(port, h.ip);
      this.#round(h, port);
    }
  }

  /** Stop announcing on `name`: the link went away or down, or (`closing`) the announcer is closing. */
  #closePort(name: string, port: Port, closing = false): void {
    this.#ports.delete(name);
    port.arp.close();
    port.ndp.close();
    port.mld?.close();
    this.#d.sysctl.restore(name);
    if (closing) return;
    this.#log.info({ op: 'port', iface: name }, 'interface gone or down; stopped announcing on it');
    this.emit('interface-down', { iface: name });
  }

  #isOwnMac(mac: Buffer): boolean {
    for (const p of this.#ports.values()) if (sameBytes(p.info.mac, mac)) return true;
    return false;
  }

  #claimed(ip: string, mac: Buffer, iface: string): void {
    const probes = this.#probes.get(ip);
    if (probes !== undefined) {
      for (const p of probes)
        if (p.iface === undefined || p.iface === iface)
          p.done({ answered: true, mac: formatMac(mac), iface });
    }
    const h = this.#held.get(ip);
    if (h === undefined || (h.iface !== undefined && h.iface !== iface) || this.#isOwnMac(mac)) return;
    const ev: ConflictEvent = { vip: ip, mac: formatMac(mac), iface, phase: 'holding' };
    this.#metrics.conflicts.inc({ vip: ip });
    // One warning per VIP per second: a misbehaving peer can send many frames.
    const now = this.#d.clock.now();
    if (now - h.lastConflictLog >= 1000) {
      h.lastConflictLog = now;
      this.#log.warn({ op: 'conflict', ip, mac: ev.mac, iface }, 'another MAC claims a VIP we hold');
    }
    this.emit('conflict', ev);
  }

  #targets(iface: string | undefined): Port[] {
    if (iface === undefined) return [...this.#ports.values()];
    const p = this.#ports.get(iface);
    return p === undefined ? [] : [p];
  }

  #join(port: Port, ip: IpAddr): void {
    const group = solicitedNode(ip.bytes);
    try {
      port.ndp.addMembership(multicastMac(group));
      port.mld?.join(formatIpBytes(group));
    } catch (err) {
      this.#log.warn(
        { op: 'join', iface: port.info.name, ip: ip.text, err },
        'cannot join the solicited-node group; NSs may not reach us through MLD-snooping switches',
      );
    }
  }

  #leave(port: Port, ip: IpAddr): void {
    const group = solicitedNode(ip.bytes);
    port.ndp.dropMembership(multicastMac(group));
    port.mld?.leave(formatIpBytes(group));
  }

  /**
   * One gratuitous round for `h` on `port` (or every port it is announced on). With `replyLater` (the round
   * sent when a VIP is taken) the reply form waits for the end of the turn: a failover takes many VIPs in
   * one turn, every client updates its cache on either form, so each VIP's first frame goes out before any
   * VIP's second and the last VIP is announced after half as many frames.
   */
  #round(h: Held, port?: Port, replyLater = false): void {
    for (const p of port === undefined ? this.#targets(h.iface) : [port]) {
      if (h.ip.family === 4) {
        const [request, reply] = gratuitousArp(p.info.mac, h.ip.bytes);
        p.arp.send(request);
        if (replyLater) this.#later(h, p, reply);
        else p.arp.send(reply);
        this.#metrics.gratuitous.inc({ vip: h.ip.text }, 2);
      } else {
        p.ndp.send(unsolicitedNa(p.info.mac, h.ip.bytes));
        this.#metrics.gratuitous.inc({ vip: h.ip.text });
      }
    }
  }

  /** Send `frame` for `h` on `p` at the end of the turn, if `h` is still held and `p` still announces. */
  #later(h: Held, p: Port, frame: Buffer): void {
    this.#replies.push({ h, p, frame });
    if (this.#replies.length > 1) return;
    setImmediate(() => {
      const replies = this.#replies;
      this.#replies = [];
      for (const r of replies) {
        if (this.#held.get(r.h.ip.text) !== r.h || this.#ports.get(r.p.info.name) !== r.p) continue;
        try {
          r.p.arp.send(r.frame);
        } catch (err) {
          this.#log.warn(
            { ip: r.h.ip.text, iface: r.p.info.name, err },
            'cannot send a gratuitous ARP reply',
          );
        }
      }
    });
  }

  #scheduleRounds(h: Held): void {
    const clock = this.#d.clock;
    const start = clock.now();
    const refresh = () => {
      if (this.#held.get(h.ip.text) !== h || this.#refreshIntervalMs <= 0) return;
      const tick = () => {
        this.#round(h);
        refresh();
      };
      h.timers = [clock.setTimeout(tick, this.#refreshIntervalMs)];
    };
    const rest = this.#scheduleMs.filter((ms) => ms > 0);
    if (this.#scheduleMs.some((ms) => ms <= 0)) this.#round(h, undefined, true);
    rest.forEach((ms, i) => {
      h.timers.push(
        clock.setTimeout(
          () => {
            if (this.#held.get(h.ip.text) !== h) return;
            this.#round(h);
            if (i === rest.length - 1) refresh();
          },
          ms - (clock.now() - start),
        ),
      );
    });
    if (rest.length === 0) refresh();
  }

  /**
   * Ask the LAN whether another station holds `vip`: ARP probes (sender 0.0.0.0) or DAD-style Neighbor
   * Solicitations on `iface` (or every port), then wait up to the probe timeout for an answer from another
   * MAC. For the agent that lost its master: stop announcing a VIP as soon as this reports `answered`.
   */
  async probe(vip: string, iface?: string, timeoutMs = this.#probeTimeoutMs || 100): Promise<ProbeResult> {
    return this.#probe(parseVip(vip), iface, timeoutMs);
  }

  async #probe(ip: IpAddr, iface: string | undefined, timeoutMs: number): Promise<ProbeResult> {
    const ports = this.#targets(iface);
    if (ports.length === 0 || this.#closed) return { answered: false };
    const clock = this.#d.clock;
    return new Promise<ProbeResult>((resolve) => {
      const timers: TimerHandle[] = [];
      const set = this.#probes.get(ip.text) ?? new Set<Probe>();
      this.#probes.set(ip.text, set);
      const probe: Probe = {
        iface,
        done: (r) => {
          for (const t of timers) clock.clearTimeout(t);
          set.delete(probe);
          if (set.size === 0 && this.#probes.get(ip.text) === set) this.#probes.delete(ip.text);
          resolve(r);
        },
      };
      set.add(probe);
      const send = () => {
        for (const p of this.#targets(iface)) {
          if (ip.family === 4) p.arp.send(arpProbe(p.info.mac, ip.bytes));
          else p.ndp.send(ndpProbe(p.info.mac, ip.bytes));
        }
      };
      send();
      const step = timeoutMs / this.#probeCount;
      for (let i = 1; i < this.#probeCount; i++) timers.push(clock.setTimeout(send, step * i));
      timers.push(clock.setTimeout(() => probe.done({ answered: false }), timeoutMs));
    });
  }

  /**
   * Take `vip`: probe (unless `probe: false` or the probe timeout is 0); when another MAC answers, emit a
   * `conflict` and do not announce. Otherwise add it to lo, answer for it on `iface` (or every port) and
   * send gratuitous ARP / unsolicited NA at once and on the schedule.
   */
  async hold(vip: string, iface?: string, opts: { probe?: boolean } = {}): Promise<HoldResult> {
    const ip = parseVip(vip);
    this.#assertOpen();
    if (this.#held.has(ip.text)) return { held: true };
    const taking = this.#taking.get(ip.text);
    if (taking !== undefined) return taking;
    if (iface !== undefined && !this.#ports.has(iface)) {
      throw new VipmeshError(
        'VIPMESH_ARP_NO_INTERFACE',
        `not announcing on interface ${iface} (absent, down or not eligible)`,
        {
          details: { iface, vip: ip.text },
        },
      );
    }
    const p = this.#take(ip, iface, opts.probe ?? this.#probeTimeoutMs > 0).finally(() =>
      this.#taking.delete(ip.text),
    );
    this.#taking.set(ip.text, p);
    return p;
  }

  async #take(ip: IpAddr, iface: string | undefined, probe: boolean): Promise<HoldResult> {
    if (probe) {
      const r = await this.#probe(ip, iface, this.#probeTimeoutMs || 100);
      if (r.answered) {
        const conflict: ConflictEvent = { vip: ip.text, mac: r.mac, iface: r.iface, phase: 'probe' };
        this.#metrics.conflicts.inc({ vip: ip.text });
        this.#log.error(
          { op: 'conflict', ip: ip.text, mac: r.mac, iface: r.iface },
          'another MAC answers for the VIP; not announcing it',
        );
        this.emit('conflict', conflict);
        return { held: false, conflict };
      }
    }
    this.#assertOpen();
    await this.#d.addresses.add(ip);
    if (this.#closed) {
      await this.#d.addresses.remove(ip);
      this.#assertOpen();
    }
    const h: Held = { ip, iface, timers: [], lastConflictLog: -Infinity };
    this.#held.set(ip.text, h);
    this.#metrics.held.set(this.#held.size);
    if (ip.family === 6) for (const p of this.#targets(iface)) this.#join(p, ip);
    this.#scheduleRounds(h);
    // Logged on the next turn: the VIPs taken together (a failover) all go on the wire before their lines.
    setImmediate(() => this.#log.info({ op: 'hold', ip: ip.text, iface: iface ?? '*' }, 'holding VIP'));
    this.emit('held', { vip: ip.text });
    return { held: true };
  }

  /** Send one gratuitous round for a held VIP now (the schedule is unchanged); false when not held. */
  announce(vip: string): boolean {
    const h = this.#held.get(parseVip(vip).text);
    if (h === undefined) return false;
    this.#round(h);
    return true;
  }

  /** Stop answering for `vip` at once, stop its repeats and remove it from lo. False when not held. */
  async release(vip: string): Promise<boolean> {
    const ip = parseVip(vip);
    const h = this.#held.get(ip.text);
    if (h === undefined) return false;
    this.#held.delete(ip.text);
    this.#metrics.held.set(this.#held.size);
    for (const t of h.timers) this.#d.clock.clearTimeout(t);
    if (ip.family === 6) for (const p of this.#targets(h.iface)) this.#leave(p, ip);
    await this.#d.addresses.remove(ip);
    this.#log.info({ op: 'release', ip: ip.text }, 'released VIP');
    this.emit('released', { vip: ip.text });
    return true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new VipmeshError('VIPMESH_ARP_CLOSED', 'the announcer is closed');
  }

  /** Release every VIP, close the ports, restore the sysctls and stop following links. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const set of this.#probes.values()) for (const p of set) p.done({ answered: false });
    await Promise.allSettled([...this.#taking.values()]);
    const vips = [...this.#held.keys()];
    const results = await Promise.allSettled(vips.map((v) => this.release(v)));
    const ifaces = [...this.#ports.keys()];
    for (const [name, port] of this.#ports) this.#closePort(name, port, true);
    this.#d.sysctl.restoreAll();
    this.#log.info(
      { op: 'close', released: vips, ifaces },
      'announcer closed: VIPs released, interfaces left',
    );
    this.#d.links.close();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }
}
