import type { Sql } from 'postgres';

/** Server-wide values in `settings` (JSON), e.g. the signing key pair. */
export class SettingsStore {
  constructor(private readonly sql: Sql) {}

  async get<T>(key: string): Promise<T | undefined> {
    const [row] = await this.sql<{ value: T }[]>`select value from settings where key = ${key}`;
    return row?.value;
  }

  /** Stores `value` unless the key exists; returns whichever value is stored, so racing servers agree. */
  async putIfAbsent<T>(key: string, value: T): Promise<T> {
    await this.sql`insert into settings (key, value) values (${key}, ${this.sql.json(value as never)}) on conflict (key) do nothing`;
    return (await this.get<T>(key))!;
  }
}
