// Proves the SQL-over-HTTP stand-in with the official @neondatabase/serverless client's HTTP
// query function, as an application uses it: tagged templates and sql.query() with parameters,
// PostgreSQL's types read back through the client's own parsers, errors as NeonDbError with
// their codes, and transactions that commit or roll back as a whole.
// NEON_SQL_ENDPOINT (http://ADDR/sql) names the stand-in, DATABASE_URL a scratch database.
import { test } from "node:test";
import assert from "node:assert/strict";
import { neon, neonConfig, NeonDbError } from "@neondatabase/serverless";

neonConfig.fetchEndpoint = process.env.NEON_SQL_ENDPOINT;
const sql = neon(process.env.DATABASE_URL);
const table = `t_${process.pid}_${Date.now()}`;

test("parameters and PostgreSQL's types round trip", async () => {
  const [row] = await sql`SELECT ${41}::int + 1 AS answer, ${"héllo 'quoted'"}::text AS greeting,
    ${true}::bool AS yes, ${null}::text AS nothing, 9007199254740993::bigint AS big,
    '2024-01-02T03:04:05Z'::timestamptz AS at, '{"a":[1,2]}'::jsonb AS doc,
    ARRAY[1,2,NULL]::int[] AS ints, 1.5::float8 AS half, 'x'::bytea AS bytes`;
  assert.equal(row.answer, 42);
  assert.equal(row.greeting, "héllo 'quoted'");
  assert.equal(row.yes, true);
  assert.equal(row.nothing, null);
  assert.equal(row.big, "9007199254740993");
  assert.ok(row.at instanceof Date);
  assert.equal(row.at.toISOString(), "2024-01-02T03:04:05.000Z");
  assert.deepEqual(row.doc, { a: [1, 2] });
  assert.deepEqual(row.ints, [1, 2, null]);
  assert.equal(row.half, 1.5);
  assert.deepEqual([...row.bytes], [0x78]);
});

test("sql.query() takes $n parameters, arrays and objects", async () => {
  const rows = await sql.query("SELECT $1::int[] AS list, $2::jsonb AS obj, $3::text AS s", [
    [3, 4],
    { k: "v" },
    "plain",
  ]);
  assert.deepEqual(rows, [{ list: [3, 4], obj: { k: "v" }, s: "plain" }]);
  const arrays = await sql.query("SELECT 1 AS a, 2 AS b", [], { arrayMode: true });
  assert.deepEqual(arrays, [[1, 2]]);
  const full = await sql.query("SELECT $1::int AS n", [7], { fullResults: true });
  assert.equal(full.command, "SELECT");
  assert.equal(full.rowCount, 1);
  assert.deepEqual(full.fields.map((f) => [f.name, f.dataTypeID]), [["n", 23]]);
  assert.deepEqual(full.rows, [{ n: 7 }]);
});

test("writes report their command and row count", async () => {
  await sql.query(`CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL)`);
  const inserted = await sql.query(`INSERT INTO ${table} VALUES ($1, $2), ($3, $4)`, [1, "a", 2, "b"], {
    fullResults: true,
  });
  assert.equal(inserted.command, "INSERT");
  assert.equal(inserted.rowCount, 2);
  const updated = await sql.query(`UPDATE ${table} SET name = $1 WHERE id > $2`, ["z", 0], {
    fullResults: true,
  });
  assert.equal(updated.command, "UPDATE");
  assert.equal(updated.rowCount, 2);
});

test("errors are NeonDbError with PostgreSQL's fields", async () => {
  await assert.rejects(sql`SELECT * FROM no_such_table_here`, (err) => {
    assert.ok(err instanceof NeonDbError);
    assert.equal(err.code, "42P01");
    assert.equal(err.severity, "ERROR");
    assert.match(err.message, /no_such_table_here/);
    assert.equal(err.position, "15");
    return true;
  });
  await sql.query(`CREATE TABLE IF NOT EXISTS ${table}_u (id int PRIMARY KEY)`);
  await sql.query(`INSERT INTO ${table}_u VALUES (1)`);
  await assert.rejects(sql.query(`INSERT INTO ${table}_u VALUES ($1)`, [1]), (err) => {
    assert.equal(err.code, "23505");
    assert.equal(err.constraint, `${table}_u_pkey`);
    assert.equal(err.table, `${table}_u`);
    return true;
  });
  // One statement per query, as over the extended protocol.
  await assert.rejects(sql.query("SELECT 1; SELECT 2"), (err) => err.code === "42601");
  await assert.rejects(sql.query("SELECT $1::int", []), (err) => err.code === "08P01");
});

test("transactions commit as a whole or not at all", async () => {
  await sql.query(`CREATE TABLE IF NOT EXISTS ${table}_tx (id int PRIMARY KEY)`);
  const results = await sql.transaction(
    (tx) => [
      tx`INSERT INTO ${sql.unsafe(`${table}_tx`)} VALUES (${1})`,
      tx`SELECT count(*)::int AS n FROM ${sql.unsafe(`${table}_tx`)}`,
    ],
    { isolationLevel: "Serializable" },
  );
  assert.deepEqual(results[1], [{ n: 1 }]);
  await assert.rejects(
    sql.transaction([
      sql`INSERT INTO ${sql.unsafe(`${table}_tx`)} VALUES (${2})`,
      sql`INSERT INTO ${sql.unsafe(`${table}_tx`)} VALUES (${1})`,
    ]),
    (err) => err.code === "23505",
  );
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM ${sql.unsafe(`${table}_tx`)}`;
  assert.equal(n, 1, "the failed transaction left nothing behind");
  const readOnly = sql.transaction([sql`INSERT INTO ${sql.unsafe(`${table}_tx`)} VALUES (${3})`], {
    readOnly: true,
  });
  await assert.rejects(readOnly, (err) => err.code === "25006");
});

test("a connection string without a password is refused", async () => {
  const url = new URL(process.env.DATABASE_URL);
  url.password = "";
  await assert.rejects(neon(url.toString())`SELECT 1`, (err) => {
    assert.ok(err instanceof NeonDbError);
    assert.match(err.message, /password/);
    return true;
  });
});
