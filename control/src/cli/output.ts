/** A table column: its header and how to show a row's value. */
export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
}

/** One cell's text: dates without milliseconds, lists comma-separated, nothing as '-'. */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return v.length ? v.map(cell).join(',') : '-';
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v)) return v.replace(/\.\d+Z$/, 'Z').replace('T', ' ');
  if (typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}=${cell(x)}`)
      .join(',') || '-';
  }
  return String(v);
}

/** Output for people (aligned tables, `key: value` records) or, with --json, for programs. */
export class Output {
  constructor(
    readonly json: boolean,
    private readonly out: NodeJS.WritableStream = process.stdout,
  ) {}

  line(text = ''): void {
    this.out.write(`${text}\n`);
  }

  /** Pretty JSON, one document per command. */
  printJson(value: unknown): void {
    this.line(JSON.stringify(value, null, 2));
  }

  table<T>(rows: T[], columns: Column<T>[]): void {
    const cells = rows.map((r) => columns.map((c) => cell(c.value(r))));
    const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
    const fmt = (row: string[]): string => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
    this.line(fmt(columns.map((c) => c.header)));
    for (const row of cells) this.line(fmt(row));
  }

  /** `key: value` lines for one resource. */
  record(fields: Array<[string, unknown]>): void {
    const width = Math.max(...fields.map(([k]) => k.length));
    for (const [k, v] of fields) this.line(`${`${k}:`.padEnd(width + 1)} ${cell(v)}`);
  }

  /** A list: a table for people, the items array with --json. */
  list<T>(rows: T[], columns: Column<T>[], empty: string): void {
    if (this.json) return this.printJson(rows);
    if (rows.length === 0) return this.line(empty);
    this.table(rows, columns);
  }

  /** One resource: `human` for people, the resource itself with --json. */
  result(value: unknown, human: () => void): void {
    if (this.json) this.printJson(value);
    else human();
  }
}
