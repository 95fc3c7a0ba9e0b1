"""`brandbot bench`: how close a generated bot comes to the framework's own limit.

Everything runs for real on loopback: the reference middleware with a fixed latency, the
rendered app under `chainlit run`, and N customers speaking Chainlit's socket.io protocol. In
the same run, alternating with the app, the same load goes to the *framework floor*: a bare
Chainlit app that shows a status, waits the same latency and turns the status into the reply
in place, with no HTTP at all. The ratio of the two is the figure that matters; absolute
numbers depend on the machine.

`config` holds the options, `servers` starts what is loaded, `load` plays the customers, `run`
orders the steps, `render_timing` times rendering, `report` types the figures and shows them.

The persistence mode (`stored`) loads the bot storing conversations in SQLite or PostgreSQL
(`databases`) beside two floors: one storing through the same data layer, one storing nothing;
`counted_chainlit` counts each server's SQL statements, `sql_counts` reads them.

The streaming mode (`stream`) loads the bot behind a middleware that streams every answer, beside a
floor that streams the same pieces (`stream_floor_app.py`): time to the first token, throughput and
CPU per delta.

The replicas mode (`replicas`) loads 1, 2, 3... replicas of the bot through the project's HAProxy beside the
single-process floor, then kills one replica and restarts each in turn under load (failover seconds,
messages lost).
"""

from .config import BenchConfig
from .databases import KINDS as DATABASE_KINDS
from .databases import DatabaseUnavailable
from .render_timing import generation_times
from .replicas import replica_counts, replicas_plot, replicas_table, resilience_lines, run_replicas_bench
from .report import (
    BenchResults,
    StoredResults,
    StreamResults,
    bench_table,
    plot,
    stored_tables,
    stream_tables,
    write_json,
)
from .run import run_bench
from .stored import run_stored_bench
from .stream import run_stream_bench

__all__ = ["DATABASE_KINDS", "BenchConfig", "BenchResults", "DatabaseUnavailable", "StoredResults", "StreamResults",
           "bench_table", "generation_times", "plot", "replica_counts", "replicas_plot",
           "replicas_table", "resilience_lines", "run_bench", "run_replicas_bench", "run_stored_bench",
           "run_stream_bench", "stored_tables", "stream_tables", "write_json"]
