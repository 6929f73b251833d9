"""Issue 4 acceptance, differential (as PRoot's test-*.sh do): coreutils, tar and
find run one shell script inside XINIM's ramfs (/tmp) and natively on a host
tmpfs (/dev/shm); the outputs must be the same.

The script prints only what does not depend on where it ran (no inode numbers,
no times except the ones it sets, no absolute paths); error messages lose their
``prog:`` prefix, which names the program as invoked.
"""
from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path

import pytest

from support.run import native, xinim_run

SCRIPT = r"""
set -u
cd "$1" || exit 99
step() { echo "== $*"; }
err() { sed 's/^[a-z]*: //'; }

step mkdir -p
mkdir -p a/b/c && echo ok
mkdir -p a/b/c && echo again ok
mkdir -p a/b/c/../d/./e && ls a/b
printf 'line%s\n' 3 1 2 5 4 > a/lines.txt
i=0; while [ $i -lt 50 ]; do echo "row $i"; i=$((i+1)); done > a/b/rows.txt
: > a/empty

step cp
cp a/lines.txt a/b/copy.txt && cat a/b/copy.txt
cp -r a a2 && ls -R a2
cp -p a/lines.txt a/pcopy.txt && echo cp -p ok
cp a/lines.txt a/b/copy.txt && cmp a/lines.txt a/b/copy.txt && echo overwrite ok
cp a/lines.txt a/b/ && ls a/b
cp a/nope x 2>&1 | err
cp -r a a/b/c/inside 2>&1 | err

step mv
mv a/b/copy.txt a/moved.txt && ls a a/b
mv a2 a3 && ls
mv a/pcopy.txt a/moved.txt && ls a && cat a/moved.txt
mv a3/b a3/lines.txt a/b/c/ && ls -R a/b/c a3

step ln -s
ln -s lines.txt a/link && readlink a/link && cat a/link
ln -s /nonexistent/x a/dangling && readlink a/dangling
ln -s b a/dirlink && ls a/dirlink/ && ls -d a/dirlink
ln a/lines.txt a/hard && stat -c '%h %s %F %n' a/lines.txt a/hard
ln -s lines.txt a/link 2>&1 | err
ln -sf empty a/link && readlink a/link

step stat
stat -c '%A %h %s %F %n' a a/b a/lines.txt a/link a/empty
stat -L -c '%A %s %F %n' a/link a/dirlink
stat -c '%s %b %F' a/b/rows.txt
stat nothere 2>&1 | err
stat -f -c '%l' .

step chmod
chmod 600 a/lines.txt && stat -c '%a %n' a/lines.txt
chmod u+x,g+w a/b/rows.txt && stat -c '%a %A' a/b/rows.txt
chmod -R go-rwx a/b && stat -c '%a %n' a/b a/b/c a/b/rows.txt
chmod 4755 a/empty && stat -c '%a %A' a/empty
chmod 1777 a/b/c && stat -c '%a %A' a/b/c
chmod 644 nothere 2>&1 | err

step touch
touch a/new && stat -c '%s %F' a/new
touch -d '2001-02-03 04:05:06 UTC' a/new && stat -c '%y %x' a/new
touch -m -d '2002-02-03 04:05:06.5 UTC' a/new && stat -c '%y %x' a/new
touch -r a/new a/moved.txt && stat -c '%y' a/moved.txt
touch -h -d '2003-01-01 UTC' a/link && stat -c '%y %n' a/link
touch -c a/absent; ls a/absent 2>&1 | err

step head tail
head -n 3 a/b/rows.txt
head -c 20 a/b/rows.txt; echo
head -n -47 a/b/rows.txt
tail -n 2 a/b/rows.txt
tail -c 12 a/b/rows.txt
tail -n +48 a/b/rows.txt
head -n 1 a/lines.txt a/moved.txt

step sort
sort a/lines.txt
sort -r a/lines.txt
sort -k2 -n -r a/b/rows.txt | head -n 3
sort -u a/lines.txt a/lines.txt | wc -l
sort -o a/sorted a/lines.txt && cat a/sorted

step find
find . -maxdepth 1 | sort
find a -type f | sort
find a -type l | sort
find a -name '*.txt' -newer a/new | sort
find . -maxdepth 2 -type d | sort
find a -empty | sort
find a -perm -4000 | sort
find -L a -maxdepth 1 -type d | sort

step tar
tar cf t.tar a && tar tf t.tar | sort
# which of two hard links is archived as the file depends on readdir order
tar tvf t.tar | awk '{print $1, $2, $6}' | sed 's/^h/-/' | sort
mkdir x && cd x && tar xf ../t.tar && cd .. && diff -r --no-dereference a x/a && echo tar same
stat -c '%a %s %F %n' x/a/lines.txt x/a/link x/a/b x/a/hard x/a/empty
stat -c '%y %n' x/a/new
tar czf t.tgz a && mkdir y && tar xzf t.tgz -C y && diff -r --no-dereference a y/a && echo tgz same

step rm -r
rm -r a3 && ls
rm -rf x y && ls
rm a/link a/dangling a/dirlink && ls a
rm -r a/b/c && ls a/b
rm a/b 2>&1 | err
rmdir a 2>&1 | err
rm -r nothere 2>&1 | err

step errors
mkdir a 2>&1 | err
cat a/b 2>&1 | err
mv a a/b/inside 2>&1 | err
ln a/b a/bb 2>&1 | err
sh -c 'echo x > a/b' 2>&1 | sed 's/^.*: //'

step big
dd if=/dev/zero of=big bs=65536 count=16 2>/dev/null; stat -c '%s' big; cksum < big
cp big big2 && cmp big big2 && echo cmp same
head -c 100000 big2 > part && stat -c '%s' part
truncate -s 5 part && stat -c '%s' part
truncate -s 1M part && stat -c '%s' part && cksum < part
wc -c a/b/rows.txt
du -s --apparent-size -b a/b/rows.txt
printf 'abc' >> part && tail -c 3 part; echo
"""


def _show(a: str, b: str) -> str:
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                        "native", "xinim"))


@pytest.fixture(scope="module")
def script_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("diffscript")
    (where / "script.sh").write_text(SCRIPT)
    return where


def test_coreutils_in_the_ramfs_match_a_tmpfs(script_dir: Path) -> None:
    assert os.path.isdir("/dev/shm")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as work:
        host = native("/bin/sh", str(script_dir / "script.sh"), work, cwd=work)
    assert host.returncode == 0, host.stderr
    assert host.stderr == ""
    res = xinim_run("--bind", f"{script_dir}:/s", "/bin/sh", "-c",
                    "mkdir /tmp/w && sh /s/script.sh /tmp/w")
    assert res.returncode == 0, res.stderr
    assert res.stdout == host.stdout, _show(host.stdout, res.stdout)
    # nothing from the script on stderr (only XINIM's own log lines may be there)
    assert [line for line in res.stderr.splitlines() if not line.startswith("xinim:")] == []
    assert res.stdout.count("== ") == SCRIPT.count("\nstep ")
    assert "ok" in res.stdout and "tar same" in res.stdout and "tgz same" in res.stdout


def test_find_maxdepth_1_of_root_is_the_xinim_root() -> None:
    res = xinim_run("/usr/bin/find", "/", "-maxdepth", "1", "-type", "d")
    assert res.returncode == 0, res.stderr
    names = sorted(res.stdout.split())
    assert names[0] == "/"
    assert {"/bin", "/etc", "/lib", "/lib64", "/usr", "/tmp", "/dev"} <= set(names)
    assert "/work" not in names
