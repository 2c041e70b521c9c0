/** Condition, status and event messages are bounded by the API (1024 characters). */
export const maxMessageLength = 1024;

/** The text cut to `max` characters, the last one an ellipsis when it was longer. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
