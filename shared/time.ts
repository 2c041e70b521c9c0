/** Times as the product writes them. */

/** RFC 3339 in UTC to the second, as Kubernetes writes times (metav1.Time): `2026-01-02T03:04:05Z`. */
export function rfc3339(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** ISO 8601 in UTC, with milliseconds only when they are not zero: `2026-01-02T03:04:05Z`, `...05.250Z`. */
export function isoTime(at: Date): string {
  return at.toISOString().replace(/\.000Z$/, 'Z');
}
