"""Interactive latency: from running a ``%%whip_grade`` cell to its panel being
displayed, minus the time of the training code itself.

One kernel, as JupyterLab would start it (widgets on, not headless), with
torch on one thread for every cell.  Per task and round, in a shuffled order:

* ``plain``: the solution's code as an ordinary cell; its time (request sent to
  kernel idle) is the training code's own time;
* ``graded``: the same code under ``%%whip_grade taskN``; its time runs from the
  request to the arrival of the panel's display message.

The magic's overhead is ``graded - plain`` per round, split into grading
(probes and assessment: the bundle's ``duration_s`` minus ``plain``) and
display (the rest: panel HTML, loss plot, widgets, transport).  The first
graded run of each task comes before the rounds and is shown on its own: it
also pays one-off imports (the task's modules, matplotlib, ipywidgets).  Each
round reseeds the script (``torch.manual_seed(round)``, in both variants), as
an edited cell would change its losses: the panel's loss plot, cached for a
re-run with the very same losses, is drawn afresh every time.
"""

from __future__ import annotations

import queue
import random
import time

from bench import (
    Samples,
    arguments,
    footer,
    header,
    progress,
    scratch,
    solution_script,
    table,
)
from jupyter_client.manager import start_new_kernel

from whipnb.core.result import RESULT_MIME

SETUP = "import torch\ntorch.set_num_threads(1)\n%load_ext whipnb"


def reseeded(script: str, seed: int) -> str:
    assert "torch.manual_seed(0)" in script, "the solution no longer seeds torch with 0"
    return script.replace("torch.manual_seed(0)", f"torch.manual_seed({seed})")


class Kernel:
    def __init__(self, cwd: str) -> None:
        self.manager, self.client = start_new_kernel(
            kernel_name="python3", cwd=cwd, extra_arguments=["--HistoryManager.hist_file=:memory:"]
        )

    def run(self, code: str) -> tuple[float, float | None, dict | None]:
        """Seconds to idle, seconds to the result display (if any), and the result bundle."""
        started = time.perf_counter()
        msg_id = self.client.execute(code, store_history=False)
        shown, bundle = None, None
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=600)
            except queue.Empty:
                raise RuntimeError("the kernel stopped answering") from None
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "display_data" and RESULT_MIME in content.get("data", {}):
                shown, bundle = time.perf_counter() - started, content["data"][RESULT_MIME]
            elif kind == "error":
                raise RuntimeError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return time.perf_counter() - started, shown, bundle

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=5)
    header("Interactive latency of %%whip_grade (magic overhead)", args)
    kernel = Kernel(str(scratch("latency")))
    rows = []
    try:
        setup, _, _ = kernel.run(SETUP)
        for task in args.tasks:
            solution = solution_script(task).read_text()
            _, first, _ = kernel.run(f"%%whip_grade {task}\n{solution}")
            plain, graded, grading = Samples(), Samples(), Samples()
            for round_ in range(args.rounds):
                # A new seed each round, the same for both variants: an edited cell's
                # losses differ from the last run's, so its plot is drawn afresh.
                body = reseeded(solution, round_ + 1)
                graded_cell = f"%%whip_grade {task}\n{body}"
                order = ["plain", "graded"]
                random.Random(round_).shuffle(order)
                for kind in order:
                    if kind == "plain":
                        plain.values.append(kernel.run(body)[0])
                    else:
                        _, shown, bundle = kernel.run(graded_cell)
                        assert shown is not None and bundle is not None, "no panel displayed"
                        graded.values.append(shown)
                        grading.values.append(bundle["duration_s"])
                progress(
                    f"{task} round {round_ + 1}: plain {plain.values[-1]:.2f} s, "
                    f"graded {graded.values[-1]:.2f} s"
                )
            overhead = Samples([g - p for g, p in zip(graded.values, plain.values, strict=True)])
            assess = Samples([g - p for g, p in zip(grading.values, plain.values, strict=True)])
            show = Samples([g - d for g, d in zip(graded.values, grading.values, strict=True)])
            rows.append(
                [task, plain, graded, overhead, assess, show, f"{first - plain.median:.2f}"]
            )
    finally:
        kernel.close()
    print(f"kernel set-up (import torch, %load_ext whipnb): {setup:.2f} s\n")
    print(
        table(
            [
                "task",
                "plain cell s",
                "graded, to panel s",
                "overhead s",
                "of which grading s",
                "of which display s",
                "first run overhead s",
            ],
            rows,
        )
    )
    footer()


if __name__ == "__main__":
    main()
