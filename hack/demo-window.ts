/** The demo's maintenance windows: daily, opening at a whole minute, right across hour and day boundaries. */
export interface DemoWindow {
  schedule: string;
  duration: string;
  timezone: string;
  opensAt: Date;
}

/** A daily window of 10 minutes opening at the first whole minute at least `leadMs` from `now`. */
export function windowAfter(now: Date, leadMs: number): DemoWindow {
  const opensAt = new Date(Math.ceil((now.getTime() + leadMs) / 60_000) * 60_000);
  return { schedule: `${opensAt.getUTCMinutes()} ${opensAt.getUTCHours()} * * *`, duration: '10m', timezone: 'UTC', opensAt };
}
