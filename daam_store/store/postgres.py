"""PostgreSQL connections that never wait forever on a server that stopped answering.

The server enforces `statement_timeout` itself and its kernel answers TCP keepalives, so neither notices
a frozen server (a stopped process, a paused VM, a swapped-out host): the client would wait on its socket
for good. `DeadlineConnection` gives every exchange with the server a deadline of its own.
"""

from __future__ import annotations

import psycopg
from psycopg import errors

PSYCOPG_WAIT_INTERVAL_S = 0.1  # psycopg's own default: how often a wait wakes up to notice Ctrl-C


class DeadlineConnection(psycopg.Connection):
    answer_timeout_s: float | None = None

    def wait(self, gen, interval: float = PSYCOPG_WAIT_INTERVAL_S, timeout: float | None = None):
        if timeout is not None:  # the caller's own wait (notifies, ...): its timeout means what it says
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.answer_timeout_s)
        except errors._WaitTimeout:
            # Mid-exchange, the connection cannot be used again; closed, SQLAlchemy drops it from its pool.
            self.close()
            raise psycopg.OperationalError(f"the server did not answer within {self.answer_timeout_s:g} s") from None


def connect(cargs, cparams, answer_timeout_s: float) -> DeadlineConnection:
    connection = DeadlineConnection.connect(*cargs, **cparams)
    connection.answer_timeout_s = answer_timeout_s
    return connection
