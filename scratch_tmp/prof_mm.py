import cProfile, pstats, sys, trio
sys.argv = [sys.argv[0], "0"]
exec(open("scratch_tmp/bench_mm.py").read().split("t = trio.run")[0])
async def once():
    async with booted(BootConfig(console=Null(), quiet=True)) as system:
        await run_program(system, argv, {"PATH": "/usr/bin:/bin"})
        pr = cProfile.Profile(); pr.enable()
        for _ in range(5):
            await run_program(system, argv, {"PATH": "/usr/bin:/bin"})
        pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(18)
trio.run(once)
