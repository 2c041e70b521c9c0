/**
 * The token the controller presents to the node agents. Not its own ServiceAccount token (valid against the API server,
 * able to patch PVCs): a token requested for the purpose through the TokenRequest API, bound to an audience of our own
 * (`cnpg-dynamic-storage-agent`) and short-lived. The agents accept only that audience, and the API server refuses it,
 * so a token captured on the wire or by a compromised agent opens nothing but the other agents, for minutes.
 */
import * as k8s from '@kubernetes/client-node';

/** The audience of the controller's tokens for agents; agents accept only tokens for it (TOKEN_AUDIENCES). */
export const agentAudience = 'cnpg-dynamic-storage-agent';

export interface AgentTokenOptions {
  namespace: string;
  serviceAccount: string;
  audience?: string;
  /** Lifetime asked for (the API server's minimum is 600 s). */
  expirationSeconds?: number;
  now?: () => number;
}

/** Requests a token when none is held or the held one has used up 80% of its lifetime; shares one request in flight. */
export function audienceTokenSource(kubeConfig: k8s.KubeConfig, options: AgentTokenOptions): () => Promise<string> {
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const now = options.now ?? Date.now;
  const expirationSeconds = options.expirationSeconds ?? 600;
  let held: { token: string; refreshAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const request = async (): Promise<string> => {
    const issuedAt = now();
    const answer = await core.createNamespacedServiceAccountToken({
      name: options.serviceAccount, namespace: options.namespace,
      body: { spec: { audiences: [options.audience ?? agentAudience], expirationSeconds } },
    });
    const token = answer.status?.token;
    if (!token) throw new Error(`TokenRequest for ${options.namespace}/${options.serviceAccount} returned no token`);
    const expires = answer.status?.expirationTimestamp ? new Date(answer.status.expirationTimestamp).getTime() : issuedAt + expirationSeconds * 1000;
    held = { token, refreshAt: issuedAt + (expires - issuedAt) * 0.8 };
    return token;
  };
  return async () => {
    if (held && now() < held.refreshAt) return held.token;
    pending ??= request().finally(() => { pending = undefined; });
    return pending;
  };
}
