#!/usr/bin/env node
// npm `mssql` (tedious) against the emulator (or a real SQL Server): login with encrypt=true +
// trustServerCertificate (tedious' default is encrypt=true) and with encrypt=false, parameterised
// Turkish queries, a transaction with SCOPE_IDENTITY(), error 2627, a 150-parameter request,
// datetime and decimal round trips, and error 8003 beyond 2,100 parameters.
//
// Usage: node mssql_check.js HOST PORT USER PASSWORD DATABASE ENCRYPT(true|false) [connect-only]
// (connect-only: log in, SELECT 1, "ALL OK"; for the server TLS modes)
// Prints one "ok: ..." line per check and "ALL OK" at the end; exits 1 on the first failure.
// Run by emulator/tests/external_clients.rs; mssql is installed here by .ci/install-deps.
'use strict';

const sql = require('mssql');

const TURKISH = "ğüşıöçİ ĞÜŞIÖÇ — Iğdır'da çay";

function fail(msg) {
  console.log(`FAIL: ${msg}`);
  process.exit(1);
}

async function main() {
  const [host, port, user, password, database, encrypt, only] = process.argv.slice(2);
  if (!encrypt) fail('usage: mssql_check.js HOST PORT USER PASSWORD DATABASE ENCRYPT');
  const table = `ext_node_${encrypt === 'true' ? 'tls' : 'plain'}`;
  const pool = new sql.ConnectionPool({
    server: host,
    port: Number(port),
    user,
    password,
    database,
    connectionTimeout: 15000,
    requestTimeout: 30000,
    pool: { max: 2, min: 0 },
    options: { encrypt: encrypt === 'true', trustServerCertificate: true },
  });
  await pool.connect();
  const one = await pool.request().query('SELECT 1 AS one');
  if (one.recordset[0].one !== 1) fail(`SELECT 1 returned ${JSON.stringify(one.recordset)}`);
  console.log(`ok: login (encrypt=${encrypt})`);
  if (only === 'connect-only') {
    await pool.close();
    console.log('ALL OK');
    return;
  }

  // Parameterised queries (RPC sp_executesql) on the Turkish seed data.
  let r = await pool
    .request()
    .input('kod', sql.NVarChar(25), '120.01.001')
    .query('SELECT cari_unvan1 FROM CARI_HESAPLAR WHERE cari_kod = @kod');
  if (r.recordset.length !== 1 || r.recordset[0].cari_unvan1 !== 'Yılmaz Gıda Ticaret Ltd. Şti.') {
    fail(`parameterised query returned ${JSON.stringify(r.recordset)}`);
  }
  // Turkish case-insensitive equality through a parameter: 'YILMAZ' matches 'Yılmaz'.
  r = await pool
    .request()
    .input('ad', sql.NVarChar(100), 'YILMAZ GIDA TİCARET LTD. ŞTİ.')
    .query('SELECT cari_kod FROM CARI_HESAPLAR WHERE cari_unvan1 = @ad');
  if (r.recordset.length !== 1 || r.recordset[0].cari_kod !== '120.01.001') {
    fail(`Turkish case-insensitive parameter returned ${JSON.stringify(r.recordset)}`);
  }
  await pool.request().batch(
    `CREATE TABLE ${table} (id int IDENTITY(1,1) NOT NULL, ad nvarchar(60) NOT NULL, ` +
      `tutar decimal(18,4) NOT NULL, tarih datetime NOT NULL, CONSTRAINT PK_${table} PRIMARY KEY (id))`
  );
  await pool.request().batch(`CREATE UNIQUE INDEX UX_${table}_ad ON ${table} (ad)`);
  console.log('ok: parameterised Turkish queries');

  // A transaction with SCOPE_IDENTITY(); the committed row is visible, a rolled-back one is not.
  const tx = new sql.Transaction(pool);
  await tx.begin();
  const ins = await new sql.Request(tx)
    .input('ad', sql.NVarChar(60), TURKISH)
    .input('tutar', sql.Decimal(18, 4), 1234.5678)
    .input('tarih', sql.DateTime, new Date(Date.UTC(2026, 0, 31, 13, 45, 10, 997)))
    .query(
      `INSERT INTO ${table} (ad, tutar, tarih) VALUES (@ad, @tutar, @tarih); ` +
        'SELECT CAST(SCOPE_IDENTITY() AS int) AS id'
    );
  const id = ins.recordset[0].id;
  if (id !== 1) fail(`SCOPE_IDENTITY() returned ${JSON.stringify(ins.recordset)}`);
  await tx.commit();
  const tx2 = new sql.Transaction(pool);
  await tx2.begin();
  await new sql.Request(tx2)
    .input('ad', sql.NVarChar(60), 'rolled back')
    .query(`INSERT INTO ${table} (ad, tutar, tarih) VALUES (@ad, 0, GETDATE())`);
  await tx2.rollback();
  r = await pool.request().query(`SELECT COUNT(*) AS n FROM ${table}`);
  if (r.recordset[0].n !== 1) fail(`after commit + rollback: ${JSON.stringify(r.recordset)} rows`);
  console.log('ok: transaction with SCOPE_IDENTITY, commit and rollback');

  // Round trips: Turkish text, decimal, datetime (1/300 s ticks: .997 stays .997).
  r = await pool
    .request()
    .input('id', sql.Int, id)
    .query(`SELECT ad, tutar, tarih FROM ${table} WHERE id = @id`);
  const row = r.recordset[0];
  if (row.ad !== TURKISH) fail(`Turkish round trip: got ${JSON.stringify(row.ad)}`);
  if (row.tutar !== 1234.5678) fail(`decimal round trip: got ${row.tutar}`);
  if (row.tarih.getTime() !== Date.UTC(2026, 0, 31, 13, 45, 10, 997)) {
    fail(`datetime round trip: got ${row.tarih.toISOString()}`);
  }
  r = await pool
    .request()
    .input('d', sql.Decimal(38, 10), '-98765432.0123456789')
    .input('t', sql.DateTime2(7), new Date(Date.UTC(2026, 11, 6, 23, 59, 59, 123)))
    .query('SELECT CAST(@d AS decimal(18,2)) AS d, @t AS t');
  if (r.recordset[0].d !== -98765432.01) fail(`decimal(38,10) -> (18,2): got ${r.recordset[0].d}`);
  if (r.recordset[0].t.getTime() !== Date.UTC(2026, 11, 6, 23, 59, 59, 123)) {
    fail(`datetime2 round trip: got ${r.recordset[0].t.toISOString()}`);
  }
  console.log('ok: Turkish text, decimal and datetime round trips');

  // Duplicate key -> 2627 (primary key) / 2601 (unique index).
  try {
    await pool
      .request()
      .input('ad', sql.NVarChar(60), TURKISH)
      .query(`INSERT INTO ${table} (ad, tutar, tarih) VALUES (@ad, 1, GETDATE())`);
    fail('duplicate INSERT succeeded');
  } catch (e) {
    if (e.number !== 2601) fail(`unique index: expected 2601, got ${e.number}: ${e.message}`);
  }
  try {
    await pool.request().batch(
      `SET IDENTITY_INSERT ${table} ON; ` +
        `INSERT INTO ${table} (id, ad, tutar, tarih) VALUES (1, N'x', 1, GETDATE())`
    );
    fail('duplicate primary key INSERT succeeded');
  } catch (e) {
    if (e.number !== 2627) fail(`primary key: expected 2627, got ${e.number}: ${e.message}`);
  }
  console.log('ok: duplicate key errors 2627 and 2601');

  // 150 parameters in one request: a 50-row INSERT of 3 parameters each, as a posting sends.
  await pool.request().batch(
    `CREATE TABLE ${table}_w (a int NOT NULL, b nvarchar(20) NOT NULL, c decimal(18,2) NOT NULL)`
  );
  let req = pool.request();
  const rows = [];
  for (let i = 1; i <= 50; i++) {
    req.input(`a${i}`, sql.Int, i);
    req.input(`b${i}`, sql.NVarChar(20), `şt-${i}`);
    req.input(`c${i}`, sql.Decimal(18, 2), i / 4);
    rows.push(`(@a${i}, @b${i}, @c${i})`);
  }
  await req.query(`INSERT INTO ${table}_w (a, b, c) VALUES ${rows.join(', ')}`);
  r = await pool
    .request()
    .query(`SELECT COUNT(*) AS n, SUM(a) AS s, SUM(c) AS t FROM ${table}_w WHERE b LIKE N'ŞT-%'`);
  const w = r.recordset[0];
  if (w.n !== 50 || w.s !== 1275 || w.t !== 318.75) fail(`150 parameters: got ${JSON.stringify(w)}`);
  console.log('ok: 150-parameter request');

  // Beyond SQL Server's 2,100 parameters: error 8003.
  req = pool.request();
  const names = [];
  for (let i = 1; i <= 2101; i++) {
    req.input(`q${i}`, sql.Int, i);
    names.push(`@q${i}`);
  }
  try {
    await req.query(`SELECT COUNT(*) AS n FROM ${table} WHERE id IN (${names.join(', ')})`);
    fail('2,101 parameters were accepted');
  } catch (e) {
    if (e.number !== 8003) fail(`2,101 parameters: expected 8003, got ${e.number}: ${e.message}`);
  }
  console.log('ok: 2,101 parameters refused with 8003');

  await pool.close();
  console.log('ALL OK');
}

main().catch((e) => fail(`${e.number ? `error ${e.number}: ` : ''}${e.message || e}`));
