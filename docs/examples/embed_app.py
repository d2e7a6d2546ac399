"""framekit inside your own Trio application: servers, clients, timeouts, cancellation.

Two small services:

* a FramedStream echo served with plain trio.serve_tcp: you wrap the stream yourself,
  and you handle per-connection errors yourself (serve_tcp deliberately does not);
* a MessageStream request/reply service with a deadline per request on the server, and
  on the client a deadline per call (fail_after) and a wait it may give up on
  (move_on_after) without losing the reply.

Stopping either server is cancelling the nursery it runs in.
"""

from __future__ import annotations

import functools

import trio

import framekit

IDLE_TIMEOUT = 0.5  # seconds a connection may stay silent before the server hangs up
REQUEST_DEADLINE = 0.2  # seconds the server spends on one request at most


async def framed_echo(stream: trio.SocketStream) -> None:
    """A trio.serve_tcp handler: wrap the raw stream, echo frames, hang up when idle."""
    try:
        async with framekit.FramedStream(stream) as channel:
            while True:
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    message = await channel.receive()
                if idle.cancelled_caught:
                    return  # no frame for IDLE_TIMEOUT seconds: close the connection
                await channel.send(message)
    except trio.EndOfChannel:
        pass  # the client closed cleanly
    except (framekit.FramekitError, trio.BrokenResourceError) as exc:
        print("dropped a bad connection:", type(exc).__name__)  # never crash the server


async def answer(stream: framekit.MessageStream) -> None:
    """A serve_messages handler: one reply per request, each within REQUEST_DEADLINE."""
    async for request in stream:  # whole messages until the client closes
        with trio.move_on_after(REQUEST_DEADLINE) as deadline:
            await trio.sleep(request.header.get("work", 0))  # stands for real work
            reply = {"id": request.header["id"], "result": request.body.upper().decode()}
        if deadline.cancelled_caught:
            reply = {"id": request.header["id"], "error": "took too long"}
        await stream.send_message(reply)


async def use_echo(port: int) -> None:
    """A client of the echo, over a stream you opened (and could have set up) yourself."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with framekit.FramedStream(stream) as channel:
        with trio.fail_after(1):  # the whole exchange, or trio.TooSlowError
            await channel.send(b"ping")
            assert await channel.receive() == b"ping"
        await trio.sleep(IDLE_TIMEOUT + 0.2)  # stay silent: the server hangs up
        try:
            await channel.receive()
        except (trio.EndOfChannel, trio.BrokenResourceError):
            print("the echo server closed an idle connection")


async def use_service(client: framekit.MessageStream) -> None:
    """A client of the request/reply service, with deadlines."""
    with trio.fail_after(1):
        await client.send_message({"id": 1}, b"hello")
        reply = await client.receive_message()
    assert reply.header["result"] == "HELLO"

    # Don't wait long for a slow reply, do something else, come back for it. A cancelled
    # receive loses nothing: the bytes it had read stay in the stream.
    await client.send_message({"id": 2, "work": 0.1}, b"slow")
    with trio.move_on_after(0.01) as gave_up:
        await client.receive_message()
    assert gave_up.cancelled_caught
    reply = await client.receive_message()
    assert reply.header["id"] == 2 and reply.header["result"] == "SLOW"

    # The server's own deadline: it answers with an error instead of running on.
    await client.send_message({"id": 3, "work": 60}, b"too slow")
    with trio.fail_after(1):
        reply = await client.receive_message()
    assert reply.header["id"] == 3 and reply.header["error"] == "took too long"


async def main() -> None:
    async with trio.open_nursery() as servers:
        serve_tcp = functools.partial(trio.serve_tcp, host="127.0.0.1")
        [listener] = await servers.start(serve_tcp, framed_echo, 0)
        await use_echo(listener.socket.getsockname()[1])

        [(host, port)] = await servers.start(framekit.serve_messages, answer, 0)
        client = await framekit.open_message_stream(host, port)
        await use_service(client)
        servers.cancel_scope.cancel()  # stop both servers
    # The servers have stopped: their handlers were cancelled and their streams closed,
    # so the client sees the end of its stream.
    async with client:
        with trio.fail_after(1):
            try:
                await client.receive_message()
            except (trio.EndOfChannel, trio.BrokenResourceError):
                print("the server shut down; the client saw the end of the stream")


trio.run(main)
