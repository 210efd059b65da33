"""Starts and stops testpeer/ws_peer.js, the WebSocket test peer written
with the npm package `ws` (standard library only, asyncio).

    peer = NodePeer()
    env = await peer.start("build/node-peer/node_modules", "server.pem")
    # env == {"LUANET_NODE_WS": "ws://127.0.0.1:PORT",
    #         "LUANET_NODE_WSS": "wss://localhost:PORT"}
    ...
    await peer.stop()

The PEM file holds the server's key and certificate chain (for localhost).
The node process runs in a session of its own, with stdin a pipe kept open:
it exits when the pipe closes, so it does not outlive this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile

WS_PEER_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_peer.js")


def node_available(node_modules_dir: str) -> bool:
    """True when `node` is on PATH and the `ws` package is in node_modules_dir."""
    return shutil.which("node") is not None and os.path.isfile(
        os.path.join(node_modules_dir, "ws", "package.json")
    )


class NodePeer:
    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.log_path: str | None = None

    def read_log(self) -> str:
        """What node wrote on stderr so far."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    async def start(self, node_modules_dir: str, pem_path: str, timeout: float = 15.0) -> dict:
        """Starts the peer; returns the variables naming its URLs. Raises
        RuntimeError (with node's log) if it exits or is not listening
        within timeout seconds."""
        if self.process is not None:
            raise RuntimeError("node peer already started")
        fd, self.log_path = tempfile.mkstemp(prefix="luanet-node-peer-", suffix=".log")
        env = dict(os.environ, NODE_PATH=os.path.abspath(node_modules_dir))
        try:
            self.process = await asyncio.create_subprocess_exec(
                "node", WS_PEER_JS, pem_path,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=fd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self.remove_log()
            raise RuntimeError(f"node peer: cannot start node: {exc}") from exc
        finally:
            os.close(fd)

        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            await self.stop(remove_log=False)
            log = self.read_log()
            self.remove_log()
            raise RuntimeError(f"node peer: not listening after {timeout} s; log:\n{log}") from None
        try:
            ports = json.loads(line)
            ws_port, wss_port = int(ports["ws"]), int(ports["wss"])
        except (ValueError, KeyError, TypeError):
            await self.stop(remove_log=False)
            log = self.read_log()
            self.remove_log()
            what = "exited" if not line else f"printed {line!r}"
            raise RuntimeError(f"node peer {what}; log:\n{log}") from None
        return {
            "LUANET_NODE_WS": f"ws://127.0.0.1:{ws_port}",
            "LUANET_NODE_WSS": f"wss://localhost:{wss_port}",
        }

    async def stop(self, remove_log: bool = True) -> None:
        """Stops the peer: SIGTERM, then SIGKILL after 3 s; waits for it."""
        process, self.process = self.process, None
        if process is not None:
            if process.returncode is None:
                try:
                    process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    await asyncio.wait_for(process.wait(), 3)
                except asyncio.TimeoutError:
                    try:
                        process.kill()
                    except ProcessLookupError:
                        pass
                    await process.wait()
            if process.stdin is not None:
                process.stdin.close()
        if remove_log:
            self.remove_log()

    def remove_log(self) -> None:
        if self.log_path is not None:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
            self.log_path = None
