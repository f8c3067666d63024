import type { Readable, Writable } from 'node:stream';
import type { Sql, TransactionSql } from 'postgres';

/** One table of a database snapshot: its columns in COPY order. */
export interface TableShape {
  name: string;
  columns: string[];
}

/** A sequence's position, so identity columns go on where they were. */
export interface SequenceState {
  name: string;
  lastValue: string;
  isCalled: boolean;
}

/** The bookkeeping table of store/migrate.ts: never copied, rebuilt by migrating the target. */
const MIGRATIONS_TABLE = 'kernex_migrations';

/** Reads a whole installation in one consistent snapshot (backup) and writes one back (restore). */
export class SnapshotStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Runs `fn` in one REPEATABLE READ, READ ONLY transaction: every read inside sees the
   * database as of one instant while the server goes on writing (what pg_dump does).
   */
  read<T>(fn: (snapshot: SnapshotReader) => Promise<T>): Promise<T> {
    return this.sql.begin('isolation level repeatable read read only', (tx) => fn(new SnapshotReader(tx))) as Promise<T>;
  }

  /** Tables and sequences in the current schema: true when there are none. */
  async isEmpty(): Promise<{ empty: boolean; schema: string; relations: number }> {
    const [row] = await this.sql<{ schema: string; relations: number }[]>`
      select current_schema() as schema, count(c.oid)::int as relations
        from pg_namespace n left join pg_class c on c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm', 'S')
       where n.nspname = current_schema() group by n.nspname`;
    return { empty: (row?.relations ?? 0) === 0, schema: row?.schema ?? 'public', relations: row?.relations ?? 0 };
  }

  /** Runs `fn` in one transaction: a restore lands whole or not at all. */
  write<T>(fn: (target: SnapshotWriter) => Promise<T>): Promise<T> {
    return this.sql.begin((tx) => fn(new SnapshotWriter(tx))) as Promise<T>;
  }
}

/** Reads inside the snapshot transaction. */
export class SnapshotReader {
  constructor(private readonly tx: TransactionSql) {}

  async serverVersion(): Promise<string> {
    const [row] = await this.tx<{ v: string }[]>`show server_version`;
    return row!.v;
  }

  /** Applied migrations, by id. */
  async migrations(): Promise<Array<{ id: number; name: string }>> {
    return this.tx<{ id: number; name: string }[]>`select id, name from kernex_migrations order by id`;
  }

  /**
   * The schema's tables in an order that loads without breaking a foreign key
   * (referenced tables first), each with its stored (not generated) columns.
   */
  async tables(): Promise<TableShape[]> {
    const cols = await this.tx<{ table: string; column: string }[]>`
      select c.relname as table, a.attname as column
        from pg_class c
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
       where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
         and c.relname <> ${MIGRATIONS_TABLE}
       order by c.relname, a.attnum`;
    const refs = await this.tx<{ from: string; to: string }[]>`
      select c.relname as from, r.relname as to
        from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid
       where k.contype = 'f' and c.relnamespace = current_schema()::regnamespace and k.conrelid <> k.confrelid`;
    const shapes = new Map<string, TableShape>();
    for (const { table, column } of cols) {
      if (!shapes.has(table)) shapes.set(table, { name: table, columns: [] });
      shapes.get(table)!.columns.push(column);
    }
    const ordered: TableShape[] = [];
    const seen = new Set<string>();
    const visit = (name: string, path: Set<string>): void => {
      if (seen.has(name) || path.has(name) || !shapes.has(name)) return;
      path.add(name);
      for (const r of refs) if (r.from === name) visit(r.to, path);
      seen.add(name);
      ordered.push(shapes.get(name)!);
    };
    for (const name of [...shapes.keys()].sort()) visit(name, new Set());
    return ordered;
  }

  /** The rows of `table` as COPY text. */
  copyOut(table: TableShape): Promise<Readable> {
    return this.tx`copy (select ${this.tx(table.columns)} from ${this.tx(table.name)}) to stdout`.readable();
  }

  async rowCount(table: string): Promise<number> {
    const [row] = await this.tx<{ n: number }[]>`select count(*)::int as n from ${this.tx(table)}`;
    return row!.n;
  }

  async sequences(): Promise<SequenceState[]> {
    const names = await this.tx<{ name: string }[]>`
      select relname as name from pg_class where relkind = 'S' and relnamespace = current_schema()::regnamespace order by relname`;
    const out: SequenceState[] = [];
    for (const { name } of names) {
      const [row] = await this.tx<{ last: string; called: boolean }[]>`select last_value::text as last, is_called as called from ${this.tx(name)}`;
      out.push({ name, lastValue: row!.last, isCalled: row!.called });
    }
    return out;
  }

  /** Bundle rows (their ids are the blob keys, DESIGN §4). */
  async bundles(): Promise<Array<{ id: string; name: string; version: string }>> {
    return this.tx<{ id: string; name: string; version: string }[]>`select id::text as id, name, version from bundles order by created_at, id`;
  }

  /** A JSON value of `settings` (the signing key lives there). */
  async setting<T>(key: string): Promise<T | undefined> {
    const [row] = await this.tx<{ value: T }[]>`select value from settings where key = ${key}`;
    return row?.value;
  }
}

/** Writes inside the restore transaction. */
export class SnapshotWriter {
  constructor(private readonly tx: TransactionSql) {}

  copyIn(table: TableShape): Promise<Writable> {
    return this.tx`copy ${this.tx(table.name)} (${this.tx(table.columns)}) from stdin`.writable();
  }

  async setSequence(s: SequenceState): Promise<void> {
    await this.tx`select setval(quote_ident(${s.name})::regclass, ${s.lastValue}::bigint, ${s.isCalled})`;
  }

  async setting<T>(key: string): Promise<T | undefined> {
    const [row] = await this.tx<{ value: T }[]>`select value from settings where key = ${key}`;
    return row?.value;
  }
}
