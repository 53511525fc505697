/**
 * The only file of src/arp that uses the native addon (its AF_PACKET socket, src/arp/native/packet.cc; found by
 * src/util/native-addon.ts). Everything above it talks to {@link FrameSocket}.
 */
import { errnoOf, VipmeshError } from '../errors.js';
import { NativeAddonMissing, nativeAddon } from '../util/native-addon.js';

/** Linux `sll_pkttype` values: who a received frame was addressed to. */
export const PacketType = {
  host: 0,
  broadcast: 1,
  multicast: 2,
  otherHost: 3,
  outgoing: 4,
} as const;

/** A packet socket bound to one interface and EtherType (or a stand-in in tests). */
export interface FrameSocket {
  /** Send one Ethernet frame. Never throws for a full queue: such frames wait for the socket. */
  send(frame: Buffer): void;
  /** Receive the link-layer multicast `mac` on this interface (solicited-node groups for NDP). */
  addMembership(mac: Buffer): void;
  dropMembership(mac: Buffer): void;
  close(): void;
}

/** Receives frames from a {@link FrameSocket}: the frame and its `sll_pkttype`. */
export type FrameHandler = (frame: Buffer, pkttype: number) => void;

interface NativeSocket {
  send(frame: Buffer): boolean;
  addMembership(mac: Buffer): void;
  dropMembership(mac: Buffer): void;
  close(): void;
  readonly ifindex: number;
}

interface NativeModule {
  PacketSocket: new (
    ifname: string,
    ethertype: number,
    filter: Buffer | null,
    onFrame: FrameHandler,
    onWritable: () => void,
  ) => NativeSocket;
  ETH_P_ARP: number;
  ETH_P_IPV6: number;
}

let native: NativeModule | undefined;

function load(): NativeModule {
  if (native !== undefined) return native;
  try {
    native = nativeAddon<NativeModule>();
  } catch (err) {
    const candidates = err instanceof NativeAddonMissing ? err.candidates : [];
    throw new VipmeshError(
      'VIPMESH_ARP_NATIVE_MISSING',
      `the AF_PACKET addon is not built and no prebuilt one fits ${process.platform}-${process.arch} ` +
        `(looked for ${candidates.join(', ')}; run npm ci or npx node-gyp rebuild)`,
      { cause: err, details: { candidates } },
    );
  }
  return native;
}

/** Turn an errno-carrying error from the addon into a VipmeshError naming the interface. */
function packetError(err: unknown, ifname: string, op: string): VipmeshError {
  const errno = errnoOf(err);
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new VipmeshError(
      'VIPMESH_ARP_PERMISSION',
      `${op} on ${ifname} needs CAP_NET_RAW (${errno}); run as root or grant the capability`,
      { cause: err, details: { iface: ifname, errno } },
    );
  }
  if (errno === 'ENODEV' || errno === 'ENXIO') {
    return new VipmeshError('VIPMESH_ARP_NO_INTERFACE', `interface ${ifname} does not exist (${errno})`, {
      cause: err,
      details: { iface: ifname, errno },
    });
  }
  return new VipmeshError(
    'VIPMESH_ARP_SOCKET',
    `${op} on ${ifname} failed: ${(err as Error)?.message ?? String(err)}`,
    {
      cause: err,
      details: { iface: ifname, errno },
    },
  );
}

/** Which frames a socket carries. */
type SocketKind = 'arp' | 'ndp';

/**
 * An AF_PACKET socket on `ifname`. `kind` picks the EtherType (ARP, or IPv6 narrowed by `filter` to
 * NDP). Frames that cannot be sent at once are queued in order and flushed when the socket is writable.
 */
export class PacketSocket implements FrameSocket {
  readonly ifname: string;
  readonly #sock: NativeSocket;
  #queue: Buffer[] = [];
  #closed = false;

  constructor(ifname: string, kind: SocketKind, onFrame: FrameHandler, filter?: Buffer) {
    const mod = load();
    this.ifname = ifname;
    const ethertype = kind === 'arp' ? mod.ETH_P_ARP : mod.ETH_P_IPV6;
    try {
      this.#sock = new mod.PacketSocket(ifname, ethertype, filter ?? null, onFrame, () => this.#flush());
    } catch (err) {
      throw packetError(err, ifname, 'opening a packet socket');
    }
  }

  /** The kernel's index of the bound interface. */
  get ifindex(): number {
    return this.#sock.ifindex;
  }

  send(frame: Buffer): void {
    if (this.#closed) return;
    if (this.#queue.length > 0) {
      this.#queue.push(frame);
      return;
    }
    if (!this.#trySend(frame)) this.#queue.push(frame);
  }

  #trySend(frame: Buffer): boolean {
    try {
      return this.#sock.send(frame);
    } catch (err) {
      // The link went away under us (ENXIO/ENETDOWN): the link watcher closes this socket shortly.
      const errno = errnoOf(err);
      if (errno === 'ENXIO' || errno === 'ENETDOWN' || errno === 'ENODEV') return true;
      throw packetError(err, this.ifname, 'sending a frame');
    }
  }

  #flush(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      if (!this.#trySend(this.#queue[0]!)) return;
      this.#queue.shift();
    }
  }

  addMembership(mac: Buffer): void {
    try {
      this.#sock.addMembership(mac);
    } catch (err) {
      throw packetError(err, this.ifname, 'joining a link-layer multicast group');
    }
  }

  dropMembership(mac: Buffer): void {
    try {
      this.#sock.dropMembership(mac);
    } catch {
      // Dropping a membership the kernel already forgot (link re-created) is "already done".
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#sock.close();
  }
}
