"""Issue 15 acceptance: one of several processes writing one sqlite database in
BEGIN IMMEDIATE transactions; a busy database is "database is locked" (timeout 0),
and the writer retries.  Usage: sqlite_writer.py DB init|hold|try|NAME ROWS."""
import sqlite3, sys, os, time
db = sys.argv[1]; who = sys.argv[2]; n = int(sys.argv[3])
con = sqlite3.connect(db, timeout=0, isolation_level=None)
con.execute("create table if not exists t (who text, i int)") if who == "init" else None
if who == "init":
    sys.exit(0)
if who == "hold":           # a transaction open until the other side has tried
    con.execute("BEGIN IMMEDIATE")
    con.execute("insert into t values ('hold', 0)")
    open(db + ".held", "w").close()
    while not os.path.exists(db + ".tried"):
        time.sleep(0.01)
    con.execute("COMMIT")
    sys.exit(0)
if who == "try":            # the loser: the database is locked, not corrupt
    while not os.path.exists(db + ".held"):
        time.sleep(0.01)
    try:
        con.execute("BEGIN IMMEDIATE")
        print("try: got it")
    except sqlite3.OperationalError as e:
        print("try:", e)
    open(db + ".tried", "w").close()
    sys.exit(0)
ok = locked = 0
for i in range(n):
    while True:
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("insert into t values (?, ?)", (who, i))
            time.sleep(0.003)
            con.execute("COMMIT")
            ok += 1
            break
        except sqlite3.OperationalError as e:
            if "database is locked" not in str(e):
                print("ERROR", e); sys.exit(1)
            locked += 1
            try: con.execute("ROLLBACK")
            except sqlite3.OperationalError: pass
            time.sleep(0.001)
print(who, ok, "locked" if locked else "never-locked")
