"""The grader as an environment for coding agents: episodes, six tools, rewards.

:class:`~whipnb.agent.env.DebugEnvironment` (``reset``/``step``, WhipStudio's
episodes), :func:`~whipnb.agent.server.create_app` (the same over HTTP,
``whipnb serve``), :class:`~whipnb.agent.rewards.GRPOReward` (a TRL reward
function) and :func:`~whipnb.agent.scorer.whipnb_scorer` (an inspect_ai scorer).
docs/AGENTS.md describes them.
"""
