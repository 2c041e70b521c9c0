/** The agent authenticates its callers with the shared TokenReview + SubjectAccessReview code (shared/auth.ts). */
export * from '../shared/auth.ts';
