import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Lease, NodeRecord, Store } from '../store/types.js';

/**
 * This est-ra node among those sharing a store: its name (the lease owner
 * other nodes see) and how long it holds a request it works on. The lease
 * outlasts any one forward (check-config makes it longer than every
 * upstream timeout), so a live node never loses a request it is still
 * forwarding; a dead one loses it after at most that long. `instance` is
 * this process's own, so the registry tells two processes of one name apart.
 */
export interface ClusterNode {
  readonly name: string;
  readonly leaseMs: number;
  readonly instance: string;
}

export function leaseFor(node: ClusterNode, now: Date): Lease {
  return { owner: node.name, expiresAt: new Date(now.getTime() + node.leaseMs) };
}

/** This process as the node registry records it. */
export function thisProcess(node: ClusterNode, version: string, now: Date): NodeRecord {
  const at = now.toISOString();
  return {
    name: node.name,
    instance: node.instance,
    host: hostname(),
    machineId: machineId(),
    pid: process.pid,
    version,
    startedAt: at,
    lastSeenAt: at,
    stoppedAt: null,
  };
}

export function newClusterNode(name: string, leaseMs: number): ClusterNode {
  return { name, leaseMs, instance: randomUUID() };
}

/** Another live process holds this node's name: starting too would make each take the other's in-flight work as its own. */
export class NodeNameTakenError extends Error {
  constructor(holder: NodeRecord, now: Date) {
    const seen = Math.max(0, Math.round((now.getTime() - new Date(holder.lastSeenAt).getTime()) / 1000));
    super(
      `another est-ra is running as node '${holder.name}' on this store (host ${holder.host}, pid ${holder.pid}, version ${holder.version}, seen ${seen} s ago): ` +
        'give each node its own cluster.node_name, or stop that one first',
    );
    this.name = 'NodeNameTakenError';
  }
}

/**
 * Takes this node's name in the registry at start, before anything is taken
 * back as this node's own. The previous holder may be replaced when it
 * stopped cleanly, has not been seen for a lease (it died, and its leases
 * have expired too), or ran on this machine under a process id that is gone
 * (killed, then restarted by systemd at once) or is this process's own (a
 * container restarted); otherwise it is a live process, and this one
 * refuses to start.
 */
export async function joinCluster(store: Store, self: NodeRecord, leaseMs: number, now: Date, isRunning = processIsRunning): Promise<void> {
  // A claim fails only when another process changed the row between the read and the write: decide again on what it wrote.
  for (let attempt = 0; attempt < 3; attempt++) {
    const holder = await store.getNode(self.name);
    if (holder && holder.instance !== self.instance && !mayReplace(holder, self, leaseMs, now, isRunning)) throw new NodeNameTakenError(holder, now);
    if (await store.claimNode(self, holder?.instance)) return;
  }
  const holder = await store.getNode(self.name);
  throw new NodeNameTakenError(holder ?? self, now);
}

function mayReplace(holder: NodeRecord, self: NodeRecord, leaseMs: number, now: Date, isRunning: (pid: number) => boolean): boolean {
  if (holder.stoppedAt !== null) return true;
  if (now.getTime() - new Date(holder.lastSeenAt).getTime() > leaseMs) return true;
  const sameMachine = holder.machineId !== null || self.machineId !== null ? holder.machineId === self.machineId : holder.host === self.host;
  // Its pid is this process's own (a container restarted: est-ra is pid 1 again): it cannot be another live process.
  return sameMachine && (holder.pid === self.pid || !isRunning(holder.pid));
}

/** Whether a process of this id exists here (signal 0 checks without sending; EPERM: it exists, as another user's). */
function processIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** systemd's machine id (machine-id(5)), the same for every process of a host and different on a cloned one once regenerated. */
function machineId(): string | null {
  try {
    return readFileSync('/etc/machine-id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}
