import { Counter, Gauge, type Registry } from '../metrics.js';
import type { HandleResult } from './responder.js';
import { REQUEST_RESULTS } from './responder.js';

/** The announcer's Prometheus metrics (`vipmesh_arp_*`), registered on the injected registry. */
export class ArpMetrics {
  readonly requests: Counter<'family' | 'iface'>;
  readonly replies: Counter<'family' | 'iface'>;
  readonly dropped: Counter<'reason'>;
  readonly gratuitous: Counter<'vip'>;
  readonly conflicts: Counter<'vip'>;
  readonly held: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'vipmesh_arp_requests_received_total',
      help: 'ARP requests and Neighbor Solicitations received (not counting our own frames)',
      labelNames: ['family', 'iface'],
      registers,
    });
    this.replies = new Counter({
      name: 'vipmesh_arp_replies_sent_total',
      help: 'ARP replies and solicited Neighbor Advertisements sent for held VIPs',
      labelNames: ['family', 'iface'],
      registers,
    });
    this.dropped = new Counter({
      name: 'vipmesh_arp_frames_dropped_total',
      help: 'Frames received and not answered, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.gratuitous = new Counter({
      name: 'vipmesh_arp_gratuitous_sent_total',
      help: 'Gratuitous ARP frames and unsolicited Neighbor Advertisements sent, per VIP',
      labelNames: ['vip'],
      registers,
    });
    this.conflicts = new Counter({
      name: 'vipmesh_arp_conflicts_total',
      help: 'Times another MAC answered for or claimed a VIP (at probe time or while holding it)',
      labelNames: ['vip'],
      registers,
    });
    this.held = new Gauge({ name: 'vipmesh_arp_vips_held', help: 'VIPs currently announced', registers });
  }

  /** Count the outcome of one received frame. */
  count(result: HandleResult, family: '4' | '6', iface: string): void {
    if (REQUEST_RESULTS.has(result)) this.requests.inc({ family, iface });
    if (result === 'answered') this.replies.inc({ family, iface });
    else this.dropped.inc({ reason: result });
  }
}
