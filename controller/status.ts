/**
 * The one place that writes DynamicStorage status. It replaces the status subresource with the object's resourceVersion,
 * so a write based on a stale read fails with a conflict (a ConflictError: the reconcile is retried at once) instead of
 * losing an update, and it skips writes that would change nothing. A failing API server is a TransientApiError (retried
 * with backoff).
 */
import { isDeepStrictEqual } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import {
  dynamicStorageGroup,
  dynamicStoragePlural,
  dynamicStorageVersion,
  type DynamicStorage,
  type DynamicStorageStatus,
} from '../shared/api/dynamicstorage.generated.ts';
import { apiWriteError } from '../shared/errors.ts';

export interface StatusSink {
  /** Writes the status when it differs; returns the object as stored (with its new resourceVersion). */
  write(object: DynamicStorage, status: DynamicStorageStatus): Promise<DynamicStorage>;
}

export class StatusWriter implements StatusSink {
  private readonly api: k8s.CustomObjectsApi;

  constructor(kubeConfig: k8s.KubeConfig) {
    this.api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  }

  async write(object: DynamicStorage, status: DynamicStorageStatus): Promise<DynamicStorage> {
    // The stored status came from JSON (no undefined members): only the new one needs the round trip.
    if (isDeepStrictEqual(object.status, normalize(status))) return object;
    const name = object.metadata?.name ?? '';
    const namespace = object.metadata?.namespace ?? '';
    try {
      return await this.api.replaceNamespacedCustomObjectStatus({
        group: dynamicStorageGroup, version: dynamicStorageVersion, plural: dynamicStoragePlural, namespace, name,
        body: { ...object, status },
      }) as DynamicStorage;
    } catch (err) {
      throw apiWriteError(err, `status of DynamicStorage ${namespace}/${name}`);
    }
  }
}

/** JSON round trip: drops undefined members so that equal statuses compare equal. */
function normalize(status: DynamicStorageStatus | undefined): unknown {
  return status === undefined ? undefined : JSON.parse(JSON.stringify(status)) as unknown;
}
