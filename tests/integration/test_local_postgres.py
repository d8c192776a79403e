"""The local PostgreSQL keeps its port across a stop and start, so a DATABASE_URL handed out before (in
.local/stack.env, in the running functions) still reaches it afterwards: an outage is an outage, not a move."""

from __future__ import annotations

import socket
from pathlib import Path

from infra.local.postgres import LocalPostgres


def test_a_restarted_cluster_listens_on_its_previous_port(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path / "pg")
    try:
        url = server.start()
        server.stop()
        assert not server.is_running()

        assert server.start() == url
        server.admin_execute("SELECT 1")
    finally:
        server.stop()


def test_a_restart_moves_only_when_the_previous_port_was_taken(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path / "pg")
    try:
        server.start()
        port = server.port
        server.stop()
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            server.start()
            assert server.port != port
            server.admin_execute("SELECT 1")
    finally:
        server.stop()
