#!/usr/bin/env python3
"""python-tds (pytds) against the emulator (or a real SQL Server): proves that a non-Rust,
non-FreeTDS client can log in, run parameterised queries (RPC sp_executesql), round-trip Turkish
text, see SQL Server's duplicate-key error number, commit / roll back transactions, and find a
value stored with trailing spaces as SQL Server does.

Usage: pytds_check.py HOST PORT USER PASSWORD DATABASE
Prints one "ok: ..." line per check and "ALL OK" at the end; exits 1 on the first failure.
Run by emulator/tests/external_clients.rs.
"""

import sys

import pytds

TURKISH = "ğüşıöçİ ĞÜŞIÖÇ — Iğdır'da çay"


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def expect_error(conn, cur, sql, params, number, what):
    """Runs sql, which must fail with SQL Server error `number`; rolls back."""
    try:
        cur.execute(sql, params)
        fail(f"{what}: succeeded")
    except pytds.Error as e:
        got = getattr(e, "msg_no", None) or getattr(e, "number", None)
        if got != number:
            fail(f"{what}: expected error {number}, got {got!r}: {e}")
    conn.rollback()


def connect(host, port, user, password, database):
    return pytds.connect(
        server=host,
        port=int(port),
        user=user,
        password=password,
        database=database,
        autocommit=False,
        login_timeout=15,
        timeout=30,
    )


def main():
    if len(sys.argv) != 6:
        fail(__doc__)
    args = sys.argv[1:]

    # 1. login
    conn = connect(*args)
    print("ok: login", flush=True)
    cur = conn.cursor()

    # 2. parameterised query on the seed data (pytds sends RPC sp_executesql with @P1)
    cur.execute("SELECT cari_unvan1 FROM CARI_HESAPLAR WHERE cari_kod = %s", ("120.01.001",))
    row = cur.fetchone()
    if row is None or row[0] != "Yılmaz Gıda Ticaret Ltd. Şti.":
        fail(f"parameterised query returned {row!r}")
    cur.execute("SELECT COUNT(*) FROM STOKLAR WHERE sto_perakende_vergi = %s", (4,))
    n = cur.fetchone()[0]
    if not isinstance(n, int) or n < 1:
        fail(f"COUNT(*) with an int parameter returned {n!r}")
    print("ok: parameterised query", flush=True)

    # 3. Turkish text round trip through a parameter and back
    cur.execute(
        "CREATE TABLE ext_py_t (id int NOT NULL, ad nvarchar(60) NOT NULL, "
        "CONSTRAINT PK_ext_py_t PRIMARY KEY (id))"
    )
    conn.commit()
    cur.execute("INSERT INTO ext_py_t (id, ad) VALUES (%s, %s)", (1, TURKISH))
    conn.commit()
    cur.execute("SELECT ad FROM ext_py_t WHERE id = %s", (1,))
    got = cur.fetchone()[0]
    if got != TURKISH:
        fail(f"Turkish round trip: sent {TURKISH!r}, got {got!r}")
    cur.execute("SELECT id FROM ext_py_t WHERE ad = %s", (TURKISH,))
    if cur.fetchone() is None:
        fail("Turkish text as a WHERE parameter found nothing")
    print("ok: Turkish round trip", flush=True)

    # 4. duplicate key -> error 2627
    expect_error(conn, cur, "INSERT INTO ext_py_t (id, ad) VALUES (%s, %s)", (1, "dup"), 2627,
                 "duplicate key INSERT")
    print("ok: duplicate key error 2627", flush=True)

    # 5. committed transaction is visible to another connection
    cur.execute("INSERT INTO ext_py_t (id, ad) VALUES (%s, %s)", (2, "committed"))
    conn.commit()
    other = connect(*args)
    oc = other.cursor()
    oc.execute("SELECT ad FROM ext_py_t WHERE id = %s", (2,))
    r = oc.fetchone()
    if r is None or r[0] != "committed":
        fail(f"committed row not visible from another connection: {r!r}")
    other.commit()
    print("ok: committed transaction", flush=True)

    # 6. rolled-back transaction leaves nothing behind
    cur.execute("INSERT INTO ext_py_t (id, ad) VALUES (%s, %s)", (3, "rolled back"))
    cur.execute("SELECT COUNT(*) FROM ext_py_t WHERE id = %s", (3,))
    if cur.fetchone()[0] != 1:
        fail("row not visible inside its own transaction")
    conn.rollback()
    cur.execute("SELECT COUNT(*) FROM ext_py_t WHERE id = %s", (3,))
    if cur.fetchone()[0] != 0:
        fail("rolled-back row is still there (same connection)")
    oc.execute("SELECT COUNT(*) FROM ext_py_t WHERE id = %s", (3,))
    if oc.fetchone()[0] != 0:
        fail("rolled-back row is visible from another connection")
    print("ok: rolled-back transaction", flush=True)

    # 7. a value stored with trailing spaces: found with and without them, unique against 'K  '
    cur.execute(
        "CREATE TABLE ext_py_ts (kod nvarchar(20) NOT NULL, CONSTRAINT UQ_ext_py_ts UNIQUE (kod))"
    )
    cur.execute("INSERT INTO ext_py_ts (kod) VALUES (%s)", ("K1   ",))
    conn.commit()
    for probe in ("K1", "K1 ", "k1      "):
        cur.execute("SELECT LEN(kod), DATALENGTH(kod) FROM ext_py_ts WHERE kod = %s", (probe,))
        r = cur.fetchone()
        if r is None or tuple(r) != (2, 10):
            fail(f"stored 'K1   ' looked up with {probe!r}: got {r!r}, expected (2, 10)")
    expect_error(conn, cur, "INSERT INTO ext_py_ts (kod) VALUES (%s)", ("K1",), 2627,
                 "'K1' next to a stored 'K1   ' under a UNIQUE constraint")
    print("ok: trailing spaces ignored in comparisons and unique keys", flush=True)

    other.close()
    conn.close()
    print("ALL OK", flush=True)


if __name__ == "__main__":
    main()
