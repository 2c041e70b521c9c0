/**
 * Lease-based leader election (the coordination.k8s.io/v1 protocol client-go uses), since @kubernetes/client-node has
 * none. Only the leader reconciles. A leader that cannot renew within `renewDeadlineMs` calls `onStoppedLeading` and
 * the process is expected to exit rather than carry on as a second leader.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { isApiCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

export function defaultIdentity(): string {
  return `${os.hostname()}_${randomUUID()}`;
}

export const DEFAULT_LEADER_TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } as const;

interface LeaseView {
  holder: string | undefined;
  renewTime: Date | undefined;
  leaseDurationMs: number;
}

/**
 * Pure: may `identity` take or keep the lease at `now`? `renewTime` is when this replica last saw the Lease change (as
 * client-go judges it), not the holder's own clock: a holder whose clock runs behind cannot be robbed, and one whose
 * clock runs ahead cannot hold the Lease for ever.
 */
export function canAcquire(lease: LeaseView, identity: string, now: Date): boolean {
  if (!lease.holder || lease.holder === identity) return true;
  if (!lease.renewTime) return true;
  return lease.renewTime.getTime() + lease.leaseDurationMs <= now.getTime();
}

/** What tryAcquireOrRenew found: we hold the Lease, someone else validly does, or the attempt failed (a conflict). */
type Attempt = 'held' | 'other' | 'failed';

/** Lease times are MicroTime: the API server refuses the millisecond precision of a plain Date. */
function micro(date: Date | undefined): k8s.V1MicroTime | undefined {
  return date === undefined ? undefined : new k8s.V1MicroTime(date);
}

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private readonly config: LeaderElectionConfig;
  private readonly log: Logger;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private inflight: Promise<void> | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  /** The Lease record as last seen, and when (local monotonic-ish time) it was first seen like that. */
  private observed: { record: string; at: number } | undefined;

  constructor(kubeConfig: k8s.KubeConfig, config: LeaderElectionConfig, log: Logger) {
    this.api = kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    this.config = config;
    this.log = log.child({ lease: `${config.namespace}/${config.name}`, identity: config.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns until leading, then renews; callbacks fire on the transitions. */
  start(callbacks: LeaderCallbacks): void {
    // Stops for good: a replica that lost the Lease exits (main.ts) and a new one campaigns.
    const lose = (why: string): void => {
      this.leading = false;
      this.stopped = true;
      if (this.watchdog) clearInterval(this.watchdog);
      this.log.error(`lost leadership: ${why}`);
      callbacks.onStoppedLeading();
    };
    const tick = async (): Promise<void> => {
      const attempt = await this.tryAcquireOrRenew().catch((err: unknown): Attempt => {
        this.log.warn('lease update failed', { err });
        return 'failed';
      });
      if (this.stopped) return;
      const now = Date.now();
      const ok = attempt === 'held';
      if (attempt === 'other' && this.leading) {
        // Another replica holds the Lease: it may be acting already. Stop at once rather than at the renew deadline.
        lose('another replica holds the lease');
        return;
      }
      if (ok) {
        this.lastRenew = now;
        if (!this.leading) {
          this.leading = true;
          this.log.info('became leader');
          callbacks.onStartedLeading();
        }
      } else if (this.leading && now - this.lastRenew > this.config.renewDeadlineMs) {
        lose('could not renew the lease in time');
        return;
      }
      const jitter = this.leading ? 0 : Math.random() * this.config.retryPeriodMs * 0.2;
      this.timer = setTimeout(() => { this.inflight = tick(); }, this.config.retryPeriodMs + jitter);
    };
    this.inflight = tick();
    // A renew that hangs (an API server that stopped answering) must not keep this replica leading past the deadline:
    // by then another replica may hold the Lease.
    this.watchdog = setInterval(() => {
      if (!this.leading || Date.now() - this.lastRenew <= this.config.renewDeadlineMs) return;
      lose('no successful renew within the deadline');
    }, Math.max(100, Math.floor(this.config.retryPeriodMs / 2)));
    this.watchdog.unref();
  }

  /** Stops campaigning; a leader releases the lease so a successor need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    await this.inflight;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.config.name, namespace: this.config.namespace });
      if (lease.spec?.holderIdentity !== this.config.identity) return;
      lease.spec = {
        holderIdentity: undefined,
        leaseDurationSeconds: 1,
        acquireTime: micro(lease.spec.acquireTime),
        renewTime: micro(new Date()),
        leaseTransitions: lease.spec.leaseTransitions,
      };
      await this.api.replaceNamespacedLease({ name: this.config.name, namespace: this.config.namespace, body: lease });
      this.log.info('released the lease');
    } catch (err) {
      this.log.warn('could not release the lease', { err });
    }
  }

  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { name, namespace, identity } = this.config;
    const now = new k8s.V1MicroTime();
    const durationSeconds = Math.ceil(this.config.leaseDurationMs / 1000);
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isApiCode(err, 404)) throw err;
      try {
        await this.api.createNamespacedLease({ namespace, body: {
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        } });
        return 'held';
      } catch (createErr) {
        if (isApiCode(createErr, 409)) return 'failed';
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const view: LeaseView = {
      holder: spec.holderIdentity,
      renewTime: spec.renewTime ? this.observedAt(spec) : undefined,
      leaseDurationMs: (spec.leaseDurationSeconds ?? durationSeconds) * 1000,
    };
    if (!canAcquire(view, identity, new Date())) return 'other';
    const takingOver = spec.holderIdentity !== identity;
    lease.spec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: now,
      acquireTime: takingOver ? now : micro(spec.acquireTime),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && spec.holderIdentity ? 1 : 0),
    };
    try {
      // resourceVersion in the body makes this a compare-and-swap: two candidates cannot both win.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return 'held';
    } catch (err) {
      if (isApiCode(err, 409)) return 'failed';
      throw err;
    }
  }

  /** When this replica first saw the Lease as it is now: the holder's clock is never trusted for expiry. */
  private observedAt(spec: k8s.V1LeaseSpec): Date {
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    return new Date(this.observed.at);
  }
}
