/**
 * The controller's /metrics is authenticated like the agents' endpoints (shared/auth.ts): a bearer token checked with a
 * TokenReview (for the accepted audiences) and `get` on `/metrics` checked with a SubjectAccessReview, failed attempts
 * rate-limited per address. The health probes stay open: the kubelet calls them without credentials.
 */
import * as k8s from '@kubernetes/client-node';
import { FailureLimiter, kubeAccessReviewer, kubeTokenReviewer, RequestAuthorizer, type GateOptions, type ReviewClient } from '../shared/auth.ts';
import type { Logger } from '../shared/log.ts';

export interface MetricsAuthConfig {
  /** Audiences a token must be for; empty accepts the API server's own (ordinary ServiceAccount tokens). */
  tokenAudiences: string[];
  /** How long an answer is reused (default 10 s). */
  cacheTtlMs?: number | undefined;
}

/** The reviews through client-node, as the agent's own client posts them. */
export function kubeReviewClient(kubeConfig: k8s.KubeConfig): ReviewClient {
  const authentication = kubeConfig.makeApiClient(k8s.AuthenticationV1Api);
  const authorization = kubeConfig.makeApiClient(k8s.AuthorizationV1Api);
  return {
    async create<T>(path: string, body: unknown): Promise<T> {
      if (path.endsWith('/tokenreviews')) return await authentication.createTokenReview({ body: body as k8s.V1TokenReview }) as T;
      if (path.endsWith('/subjectaccessreviews')) return await authorization.createSubjectAccessReview({ body: body as k8s.V1SubjectAccessReview }) as T;
      throw new Error(`no review at ${path}`);
    },
  };
}

/** The gate in front of /metrics: 20 failed authentications per address in 10 s, as the agents allow. */
export function metricsGate(kubeConfig: k8s.KubeConfig, config: MetricsAuthConfig, logger: Logger): GateOptions {
  const client = kubeReviewClient(kubeConfig);
  return {
    authorizer: new RequestAuthorizer({
      tokens: kubeTokenReviewer(client, config.tokenAudiences), access: kubeAccessReviewer(client), cacheTtlMs: config.cacheTtlMs,
    }),
    failures: new FailureLimiter(20, 10_000),
    realm: 'cnpg-dynamic-storage-controller',
    logger,
  };
}
