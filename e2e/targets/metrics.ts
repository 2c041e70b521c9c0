/** Prometheus text expositions: fetching one, and reading one sample of it. */

/** Fetches a Prometheus text exposition (a bearer token when given); fails unless the answer is 200. */
export async function scrape(url: string, token?: string): Promise<string> {
  const response = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
  return response.text();
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
