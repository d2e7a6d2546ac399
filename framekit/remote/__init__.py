"""The remote-command protocol, both ends: its sans-IO rules, the server, the client.

:mod:`._protocol` holds the message shapes, validation and authentication (pure);
:mod:`._connection` serves one connection under one deadline; :mod:`._server` shares the
limits across connections; :mod:`._processes` runs one command in its own process group;
:mod:`._files` confines and stores transfers; :mod:`._client` and :mod:`._fan_out` are the
client side.
"""

from __future__ import annotations

from ._client import Client as Client
from ._client import CommandResult as CommandResult
from ._client import FileInfo as FileInfo
from ._client import OutputChunk as OutputChunk
from ._client import run_command as run_command
from ._config import InsecureBindError as InsecureBindError
from ._config import ServerConfig as ServerConfig
from ._fan_out import DEFAULT_PARALLEL as DEFAULT_PARALLEL
from ._fan_out import HostResult as HostResult
from ._fan_out import HostTimeout as HostTimeout
from ._fan_out import fan_out as fan_out
from ._fan_out import for_each_host as for_each_host
from ._protocol import DEFAULT_PORT as DEFAULT_PORT
from ._protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._protocol import AuthenticationError as AuthenticationError
from ._protocol import ErrorCode as ErrorCode
from ._protocol import RemoteError as RemoteError
from ._server import serve_commands as serve_commands

__all__ = [
    "DEFAULT_PARALLEL",
    "DEFAULT_PORT",
    "PROTOCOL_VERSION",
    "AuthenticationError",
    "Client",
    "CommandResult",
    "ErrorCode",
    "FileInfo",
    "HostResult",
    "HostTimeout",
    "InsecureBindError",
    "OutputChunk",
    "RemoteError",
    "ServerConfig",
    "fan_out",
    "for_each_host",
    "run_command",
    "serve_commands",
]
