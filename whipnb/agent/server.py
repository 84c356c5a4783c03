"""The environment over HTTP, in WhipStudio's (and OpenEnv's) shapes.

``POST /reset {"task_id": "task1", "seed": 0}`` and ``POST /step {"action":
{"action_type": ..., "episode_id": ..., ...}}`` answer ``{"observation": {...},
"reward": ..., "done": ...}``; ``GET /health``, ``/tasks``, ``/tools`` and
``/state?episode_id=...`` describe the server and an episode.

A plain FastAPI app rather than ``openenv-core``'s ``create_app``: that package
requires gradio, fastmcp, openai and huggingface_hub at install time, and it
builds a new environment per request, where this server keeps one
environment whose episodes live on it.  The routes and JSON shapes are the
same, so OpenEnv's and WhipStudio's clients work unchanged.

Every request gets JSON back: a malformed body or a bad action is an
observation with ``error``, never a 4xx/5xx from validation.  Handlers run in
FastAPI's thread pool, so one episode's long tool call does not hold up another.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from whipnb.agent.actions import TOOLS
from whipnb.agent.env import DebugEnvironment, error_observation
from whipnb.version import __version__


def create_app(environment: DebugEnvironment) -> FastAPI:
    """The HTTP app serving ``environment`` (the caller closes the environment)."""
    app = FastAPI(title="whipnb agent environment", version=__version__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "healthy", "version": __version__}

    @app.get("/tasks")
    def tasks() -> dict[str, Any]:
        return {"tasks": environment.tasks()}

    @app.get("/tools")
    def tools() -> dict[str, Any]:
        return {"tools": [tool.spec() for tool in TOOLS.values()]}

    @app.get("/state")
    def state(episode_id: str = "") -> JSONResponse:
        found = environment.state(episode_id)
        if found is None:
            return JSONResponse({"error": f"unknown episode_id {episode_id!r}"}, status_code=404)
        return JSONResponse(found)

    @app.post("/reset")
    async def reset(request: Request) -> dict[str, Any]:
        body = await _body(request)
        if isinstance(body, str):
            return _envelope(error_observation(body, done=True))
        observation = await run_in_threadpool(
            environment.reset,
            body.get("task_id", "task1"),
            body.get("seed"),
            body.get("episode_id"),
        )
        return _envelope(observation)

    @app.post("/step")
    async def step(request: Request) -> dict[str, Any]:
        body = await _body(request)
        if isinstance(body, str):
            return _envelope(error_observation(body))
        if "action" not in body:
            return _envelope(error_observation('the body needs an "action" object'))
        return _envelope(await run_in_threadpool(environment.step, body["action"]))

    return app


async def _body(request: Request) -> dict[str, Any] | str:
    """The JSON object sent, or what is wrong with it (an empty body is ``{}``)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        return f"the request body is not JSON: {error}"
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    return body


def _envelope(observation: dict[str, Any]) -> dict[str, Any]:
    return {
        "observation": observation,
        "reward": observation.get("reward"),
        "done": bool(observation.get("done", False)),
    }
