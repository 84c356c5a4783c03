"""``whipnb serve``: the agent environment over HTTP (see docs/AGENTS.md).

Thin: it parses options and runs :func:`whipnb.agent.server.create_app` under
uvicorn; the environment (and torch) are imported only when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from types import FrameType
from typing import Any

from whipnb.cli.arguments import non_negative_int, positive


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the agent environment over HTTP",
        description="Serve the debugging environment for coding agents with WhipStudio's "
        "routes: POST /reset, POST /step, GET /health, /tasks, /tools, /state.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument("--port", type=positive(int), default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--jobs",
        type=positive(int),
        default=None,
        help="submissions graded at once (default: the number of CPUs)",
    )
    serve.add_argument(
        "--kernels-ahead",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="grading kernels kept booted for the next submissions (default: 1)",
    )
    serve.add_argument(
        "--tool-timeout",
        type=positive(float),
        default=30.0,
        help="seconds per tool call (default: 30)",
    )
    serve.add_argument(
        "--sandbox",
        choices=("bwrap", "none"),
        default="bwrap",
        help="what tool calls and submissions run in: bwrap, Debian's bubblewrap (the "
        "default), or none (plain processes: only for code you trust; see docs/AGENTS.md)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from whipnb.agent.env import DebugEnvironment
    from whipnb.agent.grader import Grader
    from whipnb.agent.process import ProcessLimits, ProcessSandbox
    from whipnb.agent.server import create_app
    from whipnb.agent.tools import ToolRunner
    from whipnb.headless.sandbox import BWRAP, unavailable

    if args.sandbox == BWRAP and (problem := unavailable()) is not None:
        print(
            f"whipnb serve: cannot sandbox the agents' code: {problem}. To serve anyway "
            "(trusted code only), pass --sandbox none",
            file=sys.stderr,
        )
        return 2
    tools = ToolRunner(ProcessSandbox(args.sandbox), ProcessLimits(args.tool_timeout))
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal: raised
    # as KeyboardInterrupt here, so the grader below still stops its warm kernels.
    signal.signal(signal.SIGTERM, _interrupt)
    with (
        Grader(args.jobs, args.kernels_ahead, sandbox=args.sandbox) as grader,
        DebugEnvironment(grader, tools) as env,
        contextlib.suppress(KeyboardInterrupt),  # how a server is meant to end
    ):
        uvicorn.run(create_app(env), host=args.host, port=args.port, log_level="info")
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
