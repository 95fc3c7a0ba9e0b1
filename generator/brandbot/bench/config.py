"""What one `brandbot bench` run measures: its load, its latency and which extra figures it takes.

A mode (streaming, persistence, replicas) is a field here, read where the servers are started
(`servers.py`) and where a figure is taken (`run.py`); the JSON carries every field as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchConfig:
    """The options of `brandbot bench`, one field each."""

    project: Path
    sessions: int = 50
    messages: int = 6
    latency_ms: float = 50.0
    rounds: int = 5
    sweep: tuple[int, ...] = ()
    idle_sessions: int = 200
    long_messages: int = 500
    #: Database kinds for the persistence mode (sqlite, postgres): when set, the run measures stored
    #: conversations only, against a floor storing through the same data layer and one storing none.
    persistence: tuple[str, ...] = ()
    #: The storing floor also goes through the bot's data_layer_guard: tells the guard's cost apart.
    guarded_floor: bool = False
    #: The floor also loses Chainlit's blocking sleeps (the project's edge.remove_blocking_sleeps), as the bot
    #: does: tells that fix's share of the bot's figures from the rest.
    floor_without_sleeps: bool = False
    #: The streaming mode: the middleware streams every answer (SSE) in `deltas` pieces `token_ms` apart,
    #: after its latency; the floor streams the same pieces with Chainlit's stream_token. The run then
    #: measures time to the first token, throughput and CPU per delta only.
    stream: bool = False
    token_ms: float = 20.0
    deltas: int = 40
    #: The replicas mode: replica counts loaded through the project's load balancer (HAProxy), each beside
    #: the single-process floor; then, with `failover` and `rolling`, a replica killed and a rolling restart.
    replicas: tuple[int, ...] = ()
    failover: bool = True
    rolling: bool = True

    def as_json(self) -> dict[str, Any]:
        """The fields as JSON values (the project as the path it was given)."""
        return {**asdict(self), "project": str(self.project), "sweep": list(self.sweep),
                "persistence": list(self.persistence), "replicas": list(self.replicas)}
