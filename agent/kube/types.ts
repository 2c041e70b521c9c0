/**
 * The few Kubernetes object fields the agent reads, as the API server sends them (JSON: timestamps are RFC 3339 strings).
 * Objects are trimmed to these fields on arrival (see trim.ts), so a node's cache holds no managed fields, container specs
 * or statuses the agent never looks at.
 */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface PodVolume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
}

export interface Pod extends KubeObject {
  spec?: { nodeName?: string; volumes?: PodVolume[] };
  status?: { phase?: string };
}

export interface PersistentVolumeClaim extends KubeObject {
  spec?: { volumeName?: string; volumeMode?: string };
}

/**
 * A PV's spec: its volume mode and which volume source it has. Source values are kept as sent (the agent only tests which
 * one is present); the other fields are dropped.
 */
export interface PersistentVolumeSpec {
  volumeMode?: string;
  csi?: object;
  local?: object;
  awsElasticBlockStore?: object;
  gcePersistentDisk?: object;
  azureDisk?: object;
  azureFile?: object;
  cinder?: object;
  vsphereVolume?: object;
  portworxVolume?: object;
  [source: string]: unknown;
}

export interface PersistentVolume extends KubeObject {
  spec?: PersistentVolumeSpec;
}

export interface ListMeta {
  resourceVersion?: string;
}

export interface KubeList<T> {
  metadata?: ListMeta;
  items: T[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

/** `meta/v1 Status`, the body of API errors and of watch ERROR events. */
export interface Status {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}
