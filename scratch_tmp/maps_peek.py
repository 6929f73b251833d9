import trio, sys
from xinim_host.cli.launch import run_program
from xinim_host.kernel import protocol as p
from xinim_host.kernel.boot import BootConfig, booted
sys.path.insert(0, "tests")
from test_mm_e2e import Capture, _mm_maps
from xinim_host.cli.options import mounts_from
async def main():
    con = Capture()
    async with booted(BootConfig(console=con, quiet=True, mounts=mounts_from([("/tmp/mmt", "/t", "ro")]))) as system:
        async with trio.open_nursery() as n:
            n.start_soon(run_program, system, ["/t/mm_many", "/tmp/go"], {"PATH": "/bin"})
            while "READY" not in con.text: await trio.sleep(0.02)
            xpid = int(con.text.split("pid=")[1].split()[0])
            h = (await system.lattice.sendrec(0, 3, p.ProcXinimToHost(caller=1, pid=xpid))).body.result
            host = open(f"/proc/{h}/maps").read()
            mm, use = await _mm_maps(system, xpid)
            open("/tmp/h.txt","w").write(host); open("/tmp/m.txt","w").write(mm)
            await system.lattice.sendrec(0, 2, p.VfsOpen(caller=1, dirfd=-100, flags=0o101, mode=0o644, path=b"/tmp/go"))
trio.run(main)
