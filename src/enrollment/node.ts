import type { Lease } from '../store/types.js';

/**
 * This est-ra node among those sharing a store: its name (the lease owner
 * other nodes see) and how long it holds a request it works on. The lease
 * outlasts any one forward (check-config makes it longer than every
 * upstream timeout), so a live node never loses a request it is still
 * forwarding; a dead one loses it after at most that long.
 */
export interface ClusterNode {
  readonly name: string;
  readonly leaseMs: number;
}

export function leaseFor(node: ClusterNode, now: Date): Lease {
  return { owner: node.name, expiresAt: new Date(now.getTime() + node.leaseMs) };
}
