/** Prometheus text expositions: fetching one, and reading one sample of it. */
import { Agent, fetch as tlsFetch } from 'undici';

/** A server certificate to check an HTTPS endpoint against: its CA and the name it was issued for. */
export interface ServerIdentity {
  ca: string;
  servername: string;
}

/**
 * Fetches a Prometheus text exposition (a bearer token when given; over HTTPS checked against `server` when given);
 * fails unless the answer is 200.
 */
export async function scrape(url: string, token?: string, server?: ServerIdentity): Promise<string> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  if (server === undefined) {
    const response = await fetch(url, { headers });
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
    return response.text();
  }
  const dispatcher = new Agent({ connect: { ca: server.ca, servername: server.servername } });
  try {
    const response = await tlsFetch(url, { headers, dispatcher });
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
    return await response.text();
  } finally {
    await dispatcher.close();
  }
}

/** The value of one sample, matched on every label given (other labels may be present). */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    const have = new Map([...body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(line.slice(close + 1).trim());
  }
  return undefined;
}
