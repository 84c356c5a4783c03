"""Kernels booted ahead of need: fresh, warmed up, never more than asked, none left behind.

(That a batch scores the same with them as the Python API and any ``--jobs``
is shown in test_batch.py, which grades with the pool on, as by default.)
"""

from __future__ import annotations

import os

import pytest
from jupyter_core.utils import run_sync
from processes import MARK, marked_environment, marked_processes, wait_until_gone

from whipnb.headless.kernels import GradingKernel, KernelPool, KernelSetup
from whipnb.headless.pipeline import kernel_setup

#: Booting a kernel on a machine shared with other work can take a while.
GONE_WITHIN_S = 30


def marked_setup() -> KernelSetup:
    """The batch's kernel set-up (sandboxed), its grader-side processes marked."""
    setup = kernel_setup(1)
    return KernelSetup(setup.arguments, {**setup.env, MARK: marked_environment()[MARK]})


def kernels_running(mark: str) -> int:
    """Kernels started with ``mark``: marked processes whose parent is not marked (the
    sandbox's own processes under each carry the mark too; the kernel inside does not)."""
    marked = marked_processes(mark)
    pids = {process.pid for process in marked}
    return sum(process.ppid() not in pids for process in marked)


def kernel_state(kernel: GradingKernel) -> dict:
    """What the kernel has imported and run, asked through a client of our own."""

    async def ask() -> dict:
        client = kernel.manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            code = (
                "import sys\n"
                "print(sorted(m for m in ('torch', 'torch._dynamo', 'whipnb.notebook.magic',"
                " 'whipnb.tasks.task6') if m in sys.modules),"
                " sorted({'torch', 'whipnb', 'matplotlib'} & set(get_ipython().user_ns)),"
                " sep='|')"
            )
            printed: list[str] = []

            def keep(message: dict) -> None:
                if message["msg_type"] == "stream":
                    printed.append(message["content"]["text"])

            await client.execute_interactive(code, output_hook=keep, timeout=60)
        finally:
            client.stop_channels()
        modules, names = "".join(printed).strip().split("|")
        return {"modules": modules, "names": names}

    return run_sync(ask)()


def test_a_kernel_taken_from_the_pool_is_fresh_and_warmed_up():
    setup = marked_setup()
    env = setup.env
    pool = KernelPool(ahead=2, demand=1, setup=setup)
    kernel = pool.take()
    try:
        assert kernel is not None and kernel.alive()
        assert kernel.sandbox == "bwrap"
        assert os.listdir(kernel.workdir) == []  # its own empty working folder
        state = kernel_state(kernel)
        assert state["modules"] == str(
            sorted(["torch", "torch._dynamo", "whipnb.notebook.magic", "whipnb.tasks.task6"])
        )
        assert state["names"] == "[]"  # code using torch without importing it still fails
        assert pool.take() is None  # one submission asked for: no second kernel booted
        assert kernels_running(env[MARK]) == 1
    finally:
        pool.close()
        if kernel is not None:
            kernel.discard()
    assert wait_until_gone(env[MARK], GONE_WITHIN_S) == []
    assert not os.path.exists(kernel.workdir)


@pytest.mark.parametrize("after_boot", [False, True], ids=["while booting", "once booted"])
def test_closing_the_pool_stops_every_kernel_not_taken(after_boot):
    setup = marked_setup()
    env = setup.env
    pool = KernelPool(ahead=2, demand=5, setup=setup)
    if after_boot:
        for future in list(pool._waiting):
            future.result()
        assert kernels_running(env[MARK]) == 2  # ahead=2 of the 5 wanted
    pool.close()
    assert wait_until_gone(env[MARK], GONE_WITHIN_S) == []
    assert pool.take() is None
