/**
 * Typed readers of configuration values (environment variables or flags), shared by the
 * server's and the agent's `config.ts` so both word their errors alike. A reader never
 * throws: it records one line per bad value, naming it, and returns the fallback, so a
 * config loader can report every problem at once.
 */

/** Where the values come from: the raw string for a key, or undefined when unset. */
export type EnvLookup<K extends string> = (key: K) => string | undefined;

/** Bounds of a whole number; `unit` reads as "a whole number of {unit}". */
export interface IntBounds {
  min: number;
  max?: number;
  unit?: string;
}

/** Reads typed values by key and collects one line per bad value in {@link EnvReader.problems}. */
export class EnvReader<K extends string = string> {
  /** Every problem found so far, one line each, naming the key. */
  readonly problems: string[] = [];

  /**
   * @param lookup gives the raw value of a key; an empty string counts as unset
   * @param label how a key is named in a problem (default: the key itself)
   */
  constructor(
    private readonly lookup: EnvLookup<K>,
    private readonly label: (key: K) => string = (key) => key,
  ) {}

  /** The value as given, or undefined when unset or empty. */
  string(key: K): string | undefined {
    const raw = this.lookup(key);
    return raw === '' ? undefined : raw;
  }

  /** A whole number within `bounds`. */
  int(key: K, fallback: number, bounds: IntBounds): number;
  int(key: K, fallback: number | undefined, bounds: IntBounds): number | undefined;
  int(key: K, fallback: number | undefined, { min, max, unit }: IntBounds): number | undefined {
    const raw = this.string(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
      const what = `a whole number${unit ? ` of ${unit}` : ''}`;
      this.problems.push(`${this.label(key)} must be ${what} ${max === undefined ? `of at least ${min}` : `from ${min} to ${max}`}, got '${raw}'`);
      return fallback;
    }
    return n;
  }

  /** A TCP port; 0 asks the system for a free one. */
  port(key: K, fallback: number): number;
  port(key: K, fallback: number | undefined): number | undefined;
  port(key: K, fallback: number | undefined): number | undefined {
    const raw = this.string(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || n > 65535) {
      this.problems.push(`${this.label(key)} must be a port number between 0 and 65535, got '${raw}'`);
      return fallback;
    }
    return n;
  }

  /** true/false, also 1/0, yes/no, on/off. */
  bool(key: K, fallback: boolean): boolean {
    const raw = this.string(key);
    if (raw === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    this.problems.push(`${this.label(key)} must be true or false, got '${raw}'`);
    return fallback;
  }

  /** One of `values`. */
  oneOf<V extends string>(key: K, values: readonly V[], fallback: V): V {
    const raw = this.string(key);
    if (raw === undefined) return fallback;
    if ((values as readonly string[]).includes(raw)) return raw as V;
    const choices = values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
    this.problems.push(`${this.label(key)} must be ${choices}, got '${raw}'`);
    return fallback;
  }

  /**
   * A URL with one of `protocols` (`'https:'`), returned as given. A problem names only the
   * protocol, never the value: a database URL holds a password.
   */
  url(key: K, protocols: readonly string[]): string | undefined {
    const raw = this.string(key);
    if (raw === undefined) return undefined;
    let protocol: string;
    try {
      protocol = new URL(raw).protocol;
    } catch {
      this.problems.push(`${this.label(key)} is not a valid URL`);
      return raw;
    }
    if (!protocols.includes(protocol)) this.problems.push(`${this.label(key)} must be a ${protocols.join(' or ')} URL, got '${protocol}'`);
    return raw;
  }

  /** A comma-separated list, items trimmed, empty items dropped; `[]` when unset. */
  list(key: K): string[] {
    const raw = this.string(key);
    if (raw === undefined) return [];
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
  }
}
