// STAND-IN state for test/standins/ibm-cloud-api.ts: the resources of one IBM Cloud VPC region and how they change
// state, following the documented VPC API objects (instances, floating IPs, custom images). Not production code.
import { randomUUID } from 'node:crypto';

/** What already exists in a region before a test starts (stock images, profiles, the VPC, subnets, SSH keys). */
export interface Catalog {
  profiles: string[];
  operatingSystems: string[];
  vpcs: string[];
  subnets: { id: string; zone: string; vpc: string }[];
  keys: string[];
  /** Stock (public) images an instance may boot from. */
  images: { id: string; name: string }[];
}

/** pending → next state after `reads` reads and `ms` milliseconds: how slow clouds look to a poller. */
export interface Transition {
  to: string;
  readsLeft: number;
  notBefore: number;
  reasons?: { code: string; message: string; more_info?: string }[];
}

export interface Resource {
  id: string;
  name: string;
  status: string;
  created_at: string;
  transition?: Transition;
  /** Removed from the region on the next read once `status` is deleting and the transition is done. */
  body: Record<string, unknown>;
}

export class RegionState {
  readonly instances = new Map<string, Resource>();
  readonly floatingIps = new Map<string, Resource>();
  readonly images = new Map<string, Resource>();
  readonly catalog: Catalog;
  private ipCounter = 10;

  constructor(
    readonly region: string,
    catalog: Partial<Catalog>,
    private readonly timing: { reads: number; ms: number },
  ) {
    this.catalog = {
      profiles: ['bz2-4x16', 'bz2-2x8', 'bx2-2x8'],
      operatingSystems: ['fedora-40-s390x', 'fedora-40-amd64', 'centos-stream-9-s390x'],
      vpcs: [],
      subnets: [],
      keys: [],
      images: [],
      ...catalog,
    };
  }

  newId = (prefix: string) => `${prefix}-${randomUUID()}`;
  nextAddress = (net: string) => `${net}.${Math.floor(++this.ipCounter / 250)}.${this.ipCounter % 250}`;

  pending(to: string, reasons?: Transition['reasons']): Transition {
    return { to, readsLeft: this.timing.reads, notBefore: Date.now() + this.timing.ms, reasons };
  }

  /** A read of `r`: advances its transition; returns false when the read finds it gone. */
  touch(kind: Map<string, Resource>, r: Resource): boolean {
    const t = r.transition;
    if (t) {
      t.readsLeft--;
      if (t.readsLeft <= 0 && Date.now() >= t.notBefore) {
        r.status = t.to;
        if (t.reasons) r.body.status_reasons = t.reasons;
        r.transition = undefined;
      }
    }
    if (r.status === 'gone') {
      kind.delete(r.id);
      return false;
    }
    return true;
  }

  /** Resources as the API shows them, in creation order. */
  view(r: Resource): Record<string, unknown> {
    return { ...r.body, id: r.id, name: r.name, status: r.status, created_at: r.created_at };
  }

  hasImage(id: string): boolean {
    return this.catalog.images.some((i) => i.id === id) || this.images.get(id)?.status === 'available';
  }

  nics(): Map<string, Resource> {
    const byNic = new Map<string, Resource>();
    for (const i of this.instances.values()) byNic.set((i.body.primary_network_interface as { id: string }).id, i);
    return byNic;
  }
}
