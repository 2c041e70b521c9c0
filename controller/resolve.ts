/**
 * Pure translations between the Kubernetes objects and the sizing engine's input: the API's volume policy (quantities,
 * optional fields) into a resolved policy (bytes, defaults applied, the window parsed), a PVC into an instance volume,
 * and the status's action history into action records and back.
 */
import type * as k8s from '@kubernetes/client-node';
import {
  emergencyGrowDefaults,
  growthPolicyDefaults,
  volumePolicyDefaults,
  type SizingAction,
  type VolumePolicy as ApiVolumePolicy,
} from '../shared/api/dynamicstorage.generated.ts';
import { instanceOfPvc } from '../shared/cnpg.ts';
import { GiB, formatQuantity, parseQuantity } from '../shared/quantity.ts';
import { rfc3339 } from '../shared/time.ts';
import {
  DEFAULT_TUNING,
  alwaysOpenWindow,
  parseMaintenanceWindow,
  type ActionRecord,
  type DiskReading,
  type EngineTuning,
  type InstanceVolume,
  type ProviderFacts,
  type ResizeCondition,
  type VolumePolicy,
} from './policy/index.ts';

/** Azure Premium SSD v1 billing tiers (P1 ... P80), in GiB. */
export const azurePremiumTiersGiB = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767] as const;

/** Annotation on a StorageClass that sets the allocation unit (e.g. `1Mi` for simulated or finer-grained storage). */
export const allocationUnitAnnotation = 'dynamicstorage.cnpg.io/allocation-unit';

export interface ResolvedVolumePolicy {
  policy: VolumePolicy;
  tuning: EngineTuning;
  /** Rounding asked for by the policy; combined with the StorageClass's facts by `providerFacts`. */
  roundToAzureTier: boolean;
}

export function resolveVolumePolicy(api: ApiVolumePolicy, field: string): ResolvedVolumePolicy {
  const emergency = { ...emergencyGrowDefaults, ...api.emergencyGrow };
  const growth = { ...growthPolicyDefaults, ...api.growth };
  const minimumStep = parseQuantity(growth.minimumStep, `${field}.growth.minimumStep`);
  const window = api.maintenanceWindow === undefined ? alwaysOpenWindow : parseMaintenanceWindow(api.maintenanceWindow, `${field}.maintenanceWindow`);
  return {
    policy: {
      request: parseQuantity(api.request, `${field}.request`),
      limit: parseQuantity(api.limit, `${field}.limit`),
      targetBuffer: api.targetBuffer ?? volumePolicyDefaults.targetBuffer,
      maintenanceWindow: window,
      emergencyGrow: {
        enabled: emergency.enabled,
        criticalThreshold: emergency.criticalThreshold,
        criticalMinimumFree: parseQuantity(emergency.criticalMinimumFree, `${field}.emergencyGrow.criticalMinimumFree`),
        exceedLimitOnEmergency: emergency.exceedLimitOnEmergency,
        maxActionsPerDay: emergency.maxActionsPerDay,
        reservedActionsForEmergency: emergency.reservedActionsForEmergency,
      },
    },
    tuning: {
      ...DEFAULT_TUNING,
      minimumStepBytes: minimumStep,
      maximumStepBytes: growth.maximumStep === undefined ? undefined : parseQuantity(growth.maximumStep, `${field}.growth.maximumStep`),
      emergencyStepBytes: minimumStep,
      emergencyStepPercent: growth.emergencyStepPercent,
      overshootMinBytes: Math.min(DEFAULT_TUNING.overshootMinBytes, minimumStep),
    },
    roundToAzureTier: growth.roundUpTo === 'AzurePremiumSSDTier',
  };
}

/**
 * What the storage behind a StorageClass does with sizes. Azure Disk: whole GiB, at most 32,767 GiB (64 TiB for v2 and
 * Ultra), and Standard/Premium v1 disks of 4 TiB or less cannot grow past 4 TiB while attached.
 */
export function providerFacts(storageClass: k8s.V1StorageClass | undefined, roundToAzureTier: boolean): ProviderFacts {
  const unitText = storageClass?.metadata?.annotations?.[allocationUnitAnnotation];
  const allocationUnit = unitText === undefined ? GiB : parseQuantity(unitText, `StorageClass annotation ${allocationUnitAnnotation}`);
  const facts: ProviderFacts = { allocationUnit };
  if (storageClass?.provisioner === 'disk.csi.azure.com') {
    const sku = storageClass.parameters?.skuName ?? storageClass.parameters?.storageaccounttype ?? 'StandardSSD_LRS';
    const elastic = sku === 'PremiumV2_LRS' || sku === 'UltraSSD_LRS';
    facts.maxVolumeSize = (elastic ? 65_536 : 32_767) * GiB;
    if (!elastic) facts.onlineGrowthBoundary = 4096 * GiB;
  }
  if (roundToAzureTier) facts.billingTiers = azurePremiumTiersGiB.map((g) => g * GiB);
  return facts;
}

/** The PVC's resize state from the conditions and allocatedResourceStatuses Kubernetes (1.31+) writes. */
export function resizeCondition(pvc: k8s.V1PersistentVolumeClaim): ResizeCondition | undefined {
  const conditions = pvc.status?.conditions ?? [];
  const allocation = pvc.status?.allocatedResourceStatuses?.storage;
  const errorCondition = conditions.find((c) => (c.type === 'ControllerResizeError' || c.type === 'NodeResizeError') && c.status === 'True');
  if (allocation === 'ControllerResizeInfeasible' || allocation === 'NodeResizeInfeasible') {
    return { phase: 'Infeasible', message: errorCondition?.message ?? allocation };
  }
  if (errorCondition) return { phase: 'Failed', message: errorCondition.message };
  const inProgress = conditions.some((c) => (c.type === 'Resizing' || c.type === 'FileSystemResizePending') && c.status === 'True');
  if (inProgress || allocation !== undefined) return { phase: 'InProgress' };
  return undefined;
}

function storageOf(quantities: Record<string, string> | undefined): number | undefined {
  const text = quantities?.storage;
  return text === undefined ? undefined : parseQuantity(text, 'storage');
}

export function instanceVolume(
  pvc: k8s.V1PersistentVolumeClaim,
  readings: { latest: DiskReading | undefined; recent: readonly DiskReading[]; longTerm?: readonly DiskReading[] },
): InstanceVolume {
  return {
    instance: instanceOfPvc(pvc),
    pvcName: pvc.metadata?.name ?? '',
    requestedSize: storageOf(pvc.spec?.resources?.requests) ?? 0,
    capacity: pvc.status?.phase === 'Bound' ? storageOf(pvc.status.capacity) : undefined,
    resize: resizeCondition(pvc),
    reading: readings.latest,
    recentReadings: readings.recent,
    longTermReadings: readings.longTerm,
  };
}

export function sizingAction(record: ActionRecord, message?: string): SizingAction {
  return {
    kind: record.kind,
    from: formatQuantity(record.from),
    to: formatQuantity(record.to),
    timestamp: rfc3339(record.timestamp),
    ...(record.completedAt ? { completedAt: rfc3339(record.completedAt) } : {}),
    ...(record.instance ? { instance: record.instance } : {}),
    result: record.result,
    ...(message ? { message } : {}),
  };
}

/** Kept here for the modules that import it from here. */
export { rfc3339 };
