"""Serving a trio app from an asyncio ASGI server: trio runs as a guest on its loop.

Under ``hypercorn -k trio`` the app's coroutines run in trio natively. Under an asyncio
server (hypercorn's default worker, uvicorn on asyncio or uvloop) they cannot: trio's
nurseries, cancel scopes and sockets only work inside a trio run. So the first ASGI call
(normally the lifespan's) starts one trio run as a *guest* on the server's loop
(:func:`trio.lowlevel.start_guest_run`): trio's tasks then run on the loop's own thread,
between the loop's callbacks, and only its wait for I/O runs in a helper thread.

Each ASGI call becomes a task in the guest's root nursery, running the app's native trio
code with ``receive`` and ``send`` that drive the server's asyncio callables. The
asyncio task of the call waits for that trio task and has its outcome: an exception goes
back to the server (which logs it and answers 500) and never reaches the shared nursery,
and a server that cancels the call (a client gone under some servers, shutdown under
all) cancels the trio task and waits until it has unwound.

Calling into asyncio from trio costs the most when each call needs an asyncio task and
two hops between the loops; most of a server's own ``send`` calls and many ``receive``
calls complete without suspending (a write into the transport's buffer, a body already
read), so for the servers known to need no task there (uvicorn, hypercorn) the first
step of each is run in place and only one that suspends is handed to an asyncio task.
A middleware's wrapper always runs as a task: inside a guest tick sniffio says trio and
there is no current asyncio task, which asyncio code of unknown shape may rely on.
And the asyncio side acts on trio directly, not through trio's thread-safe entry
queue: it starts a call's task with ``Nursery.start_soon`` and wakes a trio task with
``trio.lowlevel.reschedule``. Both are safe here because every asyncio callback runs on
the thread that owns the trio run, between two guest ticks (never inside one), and
because trio, as a guest, asks for a tick itself whenever a task becomes runnable while
its run queue is empty. The pitfalls this module avoids (signal wakeup fd, SIGINT, shutdown order,
context variables) are written up in the project's design notes on guest mode.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import Any

import outcome
import trio

log = logging.getLogger("trio_mcp")

Message = dict[str, Any]
AsgiReceive = Callable[[], Awaitable[Message]]
AsgiSend = Callable[[Message], Awaitable[None]]
TrioApp = Callable[[dict[str, Any], AsgiReceive, AsgiSend], Awaitable[None]]


class GuestHost:
    """Runs ``trio_app`` (an ASGI app written for trio) for an asyncio ASGI server.

    One instance serves one app for one loop; the guest run starts on the first call and
    ends when the lifespan ends (or, for a server that never runs the lifespan, when
    :meth:`stop` is called or the loop shuts down).
    """

    def __init__(
        self, trio_app: TrioApp, companion: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """``companion``, if given, runs in trio beside the calls for as long as the
        guest run lasts, and is cancelled when it ends."""
        self._trio_app = trio_app
        self._companion = companion
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        #: Resolved once the guest's root nursery is open (or the run failed to start).
        self._ready: asyncio.Future[None] | None = None
        #: Resolved with the guest run's outcome when it has ended.
        self._finished: asyncio.Future[None] | None = None
        #: A run has ended; only a new lifespan starts another.
        self._ended = False
        #: Calls the asyncio side still waits for; failed if the run ends under them.
        self._pending: set[_Call] = set()
        #: Trio tasks to wake with a client's departure, a group per pass of the loop.
        self._departures: _PacedWakeups | None = None

    async def __call__(self, scope: dict[str, Any], receive: AsgiReceive, send: AsgiSend) -> None:
        """Serve one ASGI call (asyncio side) in a task of the guest run.

        Cancellation: a server that cancels this task has the trio task cancelled, and
        this one goes on cancelling only once that has unwound (its finally blocks may
        still send or release)."""
        if self._nursery is None:
            if self._ended and scope["type"] != "lifespan":
                # The lifespan is over (or the run failed): a late request must not
                # start a run with no lifespan of its own, which nothing would ever stop.
                raise RuntimeError("trio-mcp's trio side has stopped")
            await self._start()
        loop = self._loop
        assert loop is not None
        done: asyncio.Future[None] = loop.create_future()
        assert self._departures is not None
        receive_in_trio = _trio_receive(receive, self._departures)
        call = _Call(self._trio_app, scope, receive_in_trio, _trio_send(send), done)
        if scope["type"] == "lifespan":
            call.send = _ending_lifespan(call.send, call)
        # Spawned from here, on the loop's thread between two guest ticks (see the
        # module's docstring): the trio task's context is a copy of this asyncio task's,
        # so what the server or an outer asyncio middleware set (a principal, a request
        # id) reaches the tool.
        self._spawn(call)
        # Until it is resolved, the run's end fails it (see _on_done): a run that dies
        # must not leave the server waiting forever.
        self._pending.add(call)
        try:
            # The future itself, not asyncio.wait (a waiter future, a set and a callback
            # more per call): a cancellation cancels it, and then a fresh one waits.
            await done
        except asyncio.CancelledError:
            await self._unwind(call, loop)
            raise
        finally:
            self._pending.discard(call)
            if scope["type"] == "lifespan":
                await self.stop()
        if call.last_message is not None:
            # Only now, with trio's side wound up: the server may cancel the lifespan's
            # task as soon as it sees this.
            await send(call.last_message)

    @staticmethod
    async def _unwind(call: _Call, loop: asyncio.AbstractEventLoop) -> None:
        """The server gave up on ``call``: cancel its trio side and wait until it has
        unwound, deaf to further cancellation (the caller re-raises it)."""
        finished = call.done
        if finished.cancelled():
            # The cancellation took the future the trio side resolves: give it another.
            finished = call.done = loop.create_future()
            call.cancel()
            while not finished.done():
                try:
                    await asyncio.wait((finished,))
                except asyncio.CancelledError:
                    pass
        if not finished.cancelled() and finished.exception() is not None:
            log.error("trio-mcp: a cancelled call failed", exc_info=finished.exception())

    def _spawn(self, call: _Call) -> None:
        if self._nursery is None:
            call.done.set_exception(RuntimeError("trio-mcp's trio side has stopped"))
            return
        self._nursery.start_soon(call.run, name=f"asgi {call.scope['type']}")

    async def _start(self) -> None:
        if self._ready is None:
            self._ended = False
            self._loop = asyncio.get_running_loop()
            self._departures = _PacedWakeups()
            self._ready = self._loop.create_future()
            self._finished = self._loop.create_future()
            _start_guest(self._loop, self._main, self._on_done)
        await asyncio.shield(self._ready)

    async def stop(self) -> None:
        """End the guest run (cancelling whatever still runs in it) and wait for it."""
        if self._finished is None:
            return
        if self._token is not None and self._nursery is not None:
            self._token.run_sync_soon(self._nursery.cancel_scope.cancel)
        await asyncio.shield(self._finished)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                assert self._ready is not None
                self._ready.set_result(None)
                assert self._departures is not None
                nursery.start_soon(self._departures.run)
                if self._companion is not None:
                    nursery.start_soon(self._companion)
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def _on_done(self, result: outcome.Outcome[None]) -> None:
        assert self._ready is not None and self._finished is not None
        error = result.error if isinstance(result, outcome.Error) else None
        if error is not None and not isinstance(error, trio.Cancelled):
            log.error("trio-mcp's trio side failed", exc_info=error)
        for future in (self._ready, self._finished):
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(RuntimeError(f"trio-mcp's trio side failed: {error!r}"))
        # Calls whose trio task never finished (a run that crashed abandons its tasks):
        # their servers would otherwise wait forever.
        for call in self._pending:
            if not call.done.done():
                call.done.set_exception(RuntimeError("trio-mcp's trio side has stopped"))
        # A later lifespan (a server that runs a second one) starts a fresh run.
        self._ready = self._finished = None
        self._token = None
        self._ended = True


class _Call:
    """One ASGI call's trio side, and the future its asyncio side waits on."""

    __slots__ = ("app", "cancel_scope", "done", "last_message", "receive", "scope", "send")

    def __init__(
        self,
        app: TrioApp,
        scope: dict[str, Any],
        receive: AsgiReceive,
        send: AsgiSend,
        done: asyncio.Future[None],
    ) -> None:
        self.app = app
        self.scope = scope
        self.receive = receive
        self.send = send
        self.done = done
        self.cancel_scope = trio.CancelScope()
        #: A message the asyncio side sends after the call (see _ending_lifespan).
        self.last_message: Message | None = None

    def cancel(self) -> None:
        self.cancel_scope.cancel()

    async def run(self) -> None:
        try:
            with self.cancel_scope:
                await self.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            # Never into the shared nursery: one failed request must not end the others.
            # Cancelled (the server cancelled the call, or the run is ending) ends the
            # call on the asyncio side as finished.
            cancelled = _only_cancelled(exc)
            if not self.done.done():
                if cancelled:
                    self.done.set_result(None)
                elif isinstance(exc, asyncio.CancelledError):
                    # Set on a future, it would read as the future's own cancellation.
                    error = RuntimeError("an asyncio cancellation escaped the trio side")
                    self.done.set_exception(error)
                else:
                    self.done.set_exception(exc)
            if cancelled or isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            if not self.done.done():
                self.done.set_result(None)


def _only_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's Cancelled, or a group of nothing else (what a handler
    with a nursery of its own raises when the run ends)."""
    if isinstance(exc, trio.Cancelled):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None


def _start_guest(
    loop: asyncio.AbstractEventLoop,
    main: Callable[[], Awaitable[None]],
    on_done: Callable[[outcome.Outcome[None]], object],
) -> None:
    # Trio takes over Ctrl+C when SIGINT still has Python's default handler as it
    # starts; the server's handler (or asyncio's) must keep it, so hold a placeholder
    # in place while trio looks.
    restore = None
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            restore = signal.signal(signal.SIGINT, _ignore_signal)
    except ValueError:
        pass  # not the main thread: trio leaves signals alone there anyway
    try:
        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=on_done,
            # The host owns the wakeup fd (loop.add_signal_handler): without this, trio
            # takes it and the server's SIGTERM handler is never called.
            host_uses_signal_set_wakeup_fd=True,
        )
    finally:
        if restore is not None:
            signal.signal(signal.SIGINT, restore)


def _ignore_signal(signum: int, frame: object) -> None:
    pass


_LIFESPAN_ENDS = frozenset(
    ("lifespan.startup.failed", "lifespan.shutdown.complete", "lifespan.shutdown.failed")
)


def _ending_lifespan(send: AsgiSend, call: _Call) -> AsgiSend:
    """``send`` for the lifespan's call, which ends the call once the lifespan is over.

    A trio app's lifespan task may hold tasks of its own open after it has answered
    ``shutdown`` (Quart-Trio's nursery does, until its server cancels it); the asyncio
    server has nothing to cancel, so the call is ended here, and with it the run. The
    final message is kept for the asyncio side to send once the run has ended: a server
    may cancel the lifespan as soon as it has it (hypercorn does), and the guest run
    must not be cut short.
    """

    async def lifespan_send(message: Message) -> None:
        if message["type"] in _LIFESPAN_ENDS:
            call.last_message = message
            call.cancel()
        else:
            await send(message)

    return lifespan_send


#: Servers whose own ``receive``/``send`` need no asyncio task of their own: their first
#: step may run in place, inside a guest tick (where sniffio says trio and there is no
#: current asyncio task). Anything else, a middleware's wrapper above all (Starlette's
#: uses anyio, which would take itself for trio there), always runs as an asyncio task.
_IN_PLACE_MODULES = ("uvicorn.", "hypercorn.")


def _in_place(callable_: Callable[..., Any]) -> bool:
    return str(getattr(callable_, "__module__", "")).startswith(_IN_PLACE_MODULES)


def _trio_receive(receive: AsgiReceive, departures: _PacedWakeups) -> AsgiReceive:
    return _GuestReceive(receive, departures)


class _GuestReceive:
    """The server's ``receive`` as the trio side awaits it (:func:`call_asyncio`), and
    :meth:`ready`, which answers ``trio_mcp._http.received_already``: whether the server
    already has the next message (a POST's whole body, most often), so that reading it
    needs no deadline."""

    __slots__ = ("_begun", "_departures", "_in_place", "_receive")

    def __init__(self, receive: AsgiReceive, departures: _PacedWakeups) -> None:
        self._receive = receive
        self._departures = departures
        self._in_place = _in_place(receive)
        #: A receive whose first step :meth:`ready` ran, suspended: the next call's.
        self._begun: tuple[Coroutine[Any, Any, Any], Any] | None = None

    async def __call__(self) -> Message:
        begun, self._begun = self._begun, None
        if begun is not None:
            message: Message = await _wait_for_coroutine(*begun, self._departures)
        else:
            message = await call_asyncio(
                self._receive(), in_place=self._in_place, departures=self._departures
            )
        return message

    def ready(self) -> Message | None:
        """The next message if the server's ``receive`` completes without waiting, else
        None (and the receive it began is the next call's); None at once for a server
        whose ``receive`` must run as an asyncio task."""
        if not self._in_place or self._begun is not None:
            return None
        coroutine = self._receive()
        if type(coroutine) is not CoroutineType:
            # Not a coroutine after all: it cannot be stepped here; the next call awaits it.
            self._begun = (_awaiting(coroutine), None)
            return None
        try:
            suspended_on = coroutine.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            raise _server_cancelled() from None
        self._begun = (coroutine, suspended_on)
        return None


def _trio_send(send: AsgiSend) -> AsgiSend:
    in_place = _in_place(send)

    async def trio_send(message: Message) -> None:
        await call_asyncio(send(message), in_place=in_place)

    return trio_send


async def call_asyncio(
    coroutine: Awaitable[Any], *, in_place: bool = False, departures: _PacedWakeups | None = None
) -> Any:
    """Await an asyncio coroutine from a trio task of the guest run.

    With ``in_place``, its first step runs here and now: when it completes without
    suspending (the common case for a server's ASGI ``send``), that is all. Otherwise
    (and always without ``in_place``) it runs as an asyncio task and this trio task
    sleeps until it is done. Cancelling the trio task cancels the
    asyncio task and waits until it has unwound, then raises :class:`trio.Cancelled`.
    An asyncio cancellation that trio did not ask for (the loop shutting down cancels
    every task) is no trio cancellation: it is raised as
    :class:`trio.BrokenResourceError`, never as :class:`asyncio.CancelledError`, which
    trio code would take for a bug and no ``except Exception`` catches.

    With ``departures``, an ``http.disconnect`` this task waited for wakes it in its
    turn among every other (see :class:`_PacedWakeups`).
    """
    if in_place and type(coroutine) is CoroutineType:
        try:
            suspended_on = coroutine.send(None)
        except StopIteration as stop:
            # Complete without suspending; still a checkpoint, as every trio call must
            # be able to be: the caller may loop on sends that never suspend.
            await trio.lowlevel.checkpoint_if_cancelled()
            return stop.value
        except asyncio.CancelledError:
            raise _server_cancelled() from None
        return await _wait_for_coroutine(coroutine, suspended_on, departures)
    return await _wait_for_task(asyncio.ensure_future(coroutine), departures)


async def _wait_for_coroutine(
    coroutine: Coroutine[Any, Any, Any],
    suspended_on: Any,
    departures: _PacedWakeups | None = None,
) -> Any:
    """Sleep this trio task until ``coroutine``, begun in place and suspended on
    ``suspended_on``, is done, and have its outcome (as :func:`call_asyncio` says).

    A coroutine suspended on an asyncio future (all that a server's ``receive`` and
    ``send`` ever wait on) goes on in that future's done callback (:class:`_Stepper`),
    with no asyncio task: a held stream then costs no task while it waits, and a client's
    departure wakes it in one callback rather than a task's step and then its done
    callback, a pass of the loop later. Anything else it waits on gets an asyncio task.
    """
    if not _is_future(suspended_on):
        task = asyncio.get_running_loop().create_task(_resume(coroutine, suspended_on))
        return await _wait_for_task(task, departures)
    stepper = _Stepper(coroutine, trio.lowlevel.current_task(), departures)
    stepper.wait_on(suspended_on)
    try:
        return await trio.lowlevel.wait_task_rescheduled(stepper.abort)
    finally:
        if stepper.cancelling:
            # The cancellation that aborted the wait is still in force: raise it here,
            # as Cancelled, whatever the coroutine ended with.
            await trio.lowlevel.checkpoint()


def _is_future(yielded: Any) -> bool:
    # What an asyncio task checks too: a future awaited (not a bare ``yield``) sets this.
    return getattr(yielded, "_asyncio_future_blocking", False) is True


class _Stepper:
    """Steps a coroutine suspended on an asyncio future each time its future is done,
    as an asyncio task would, and wakes a trio task with how it ended.

    Each step runs in a done callback, on the loop's thread between two guest ticks,
    where the bridge's other wakeups run too. Cancellation is an asyncio task's too
    (:meth:`abort`): the future waited on is cancelled, the coroutine unwinds in its
    next step, and only then is the trio task woken, to raise Cancelled. So a server's
    send that was cancelled still counts as under way until its coroutine has unwound,
    as the stall timer's cut-off expects (``trio_mcp._streaming``).
    """

    __slots__ = ("_coroutine", "_departures", "_future", "_task", "_trio_task", "cancelling")

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, Any],
        trio_task: trio.lowlevel.Task,
        departures: _PacedWakeups | None,
    ) -> None:
        self._coroutine = coroutine
        self._trio_task = trio_task
        self._departures = departures
        #: The future whose done callback steps the coroutine next.
        self._future: asyncio.Future[Any] | None = None
        #: The asyncio task it went on in, when it waited on something else.
        self._task: asyncio.Task[Any] | None = None
        #: The trio task was cancelled: the next step throws the cancellation in.
        self.cancelling = False

    def wait_on(self, future: asyncio.Future[Any]) -> None:
        future._asyncio_future_blocking = False
        self._future = future
        future.add_done_callback(self._step)

    def _step(self, future: asyncio.Future[Any]) -> None:
        self._future = None
        try:
            if self.cancelling and not future.cancelled():
                # Done before the cancellation could cancel it: throw it in all the same.
                yielded = self._coroutine.throw(asyncio.CancelledError())
            else:
                yielded = self._coroutine.send(None)
        except StopIteration as stop:
            result: outcome.Outcome[Any] = outcome.Value(stop.value)
        except asyncio.CancelledError:
            result = outcome.Error(_server_cancelled())
        except BaseException as exc:  # the trio task raises it, as it would its own
            result = outcome.Error(exc)
        else:
            if _is_future(yielded):
                self.wait_on(yielded)
            else:
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(_resume(self._coroutine, yielded))
                self._task.add_done_callback(self._task_done)
            return
        _wake(self._trio_task, result, None if self.cancelling else self._departures)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        """The coroutine waited on something else than a future, in an asyncio task."""
        trio.lowlevel.reschedule(self._trio_task, _outcome_of(task))

    def abort(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self.cancelling = True
        if self._future is not None:
            self._future.cancel()
        elif self._task is not None:
            self._task.cancel()
        # Not aborted yet: the coroutine's next step wakes this task once it has unwound
        # (and a coroutine handed to an asyncio task wakes it when that task ends).
        return trio.lowlevel.Abort.FAILED


async def _wait_for_task(task: asyncio.Future[Any], departures: _PacedWakeups | None = None) -> Any:
    """Sleep this trio task until the asyncio ``task`` is done, and have its outcome
    (the waiting half of :func:`call_asyncio`, whose docstring says how it ends)."""
    trio_task = trio.lowlevel.current_task()
    aborted = False

    def wake(finished: asyncio.Future[Any]) -> None:
        # On the loop's thread, between guest ticks: trio wakes itself up for this.
        _wake(trio_task, _outcome_of(finished), departures)

    def abort(raise_cancel: Any) -> trio.lowlevel.Abort:
        nonlocal aborted
        aborted = True
        task.cancel()
        # Not aborted yet: wake() reschedules this task once the asyncio task has unwound.
        return trio.lowlevel.Abort.FAILED

    task.add_done_callback(wake)
    try:
        result = await trio.lowlevel.wait_task_rescheduled(abort)
    finally:
        if aborted:
            # The cancellation that aborted the wait is still in force: raise it here,
            # as Cancelled, whatever the asyncio task ended with (its CancelledError too).
            await trio.lowlevel.checkpoint()
    return result


#: Departures handed to trio per pass of the loop: as many as the trio side's pacing
#: (:data:`trio_mcp._pacing.GROUP`) acts on at once.
DEPARTURES_PER_PASS = 16


def _outcome_of(task: asyncio.Future[Any]) -> outcome.Outcome[Any]:
    """A finished asyncio task's outcome for the trio side: a cancellation of its own
    (one trio did not ask for; when trio did, the waiter raises Cancelled anyway) is
    :func:`_server_cancelled`, never an asyncio CancelledError."""
    if task.cancelled():
        return outcome.Error(_server_cancelled())
    captured: outcome.Outcome[Any] = outcome.capture(task.result)
    return captured


def _wake(
    trio_task: trio.lowlevel.Task,
    result: outcome.Outcome[Any],
    departures: _PacedWakeups | None,
) -> None:
    """Wake ``trio_task`` with ``result``: at once, or, with ``departures``, in its turn
    among them when it is one."""
    if departures is not None and _is_disconnect(result):
        departures.add(trio_task, result)
    else:
        trio.lowlevel.reschedule(trio_task, result)


def _is_disconnect(result: outcome.Outcome[Any]) -> bool:
    value = result.value if isinstance(result, outcome.Value) else None
    return isinstance(value, dict) and value.get("type") == "http.disconnect"


class _PacedWakeups:
    """Trio tasks woken a group per pass of trio's loop rather than all in one.

    When thousands of clients leave at once, the server hears every connection's end in
    one pass of its loop and each held stream's ``receive`` then completes with
    ``http.disconnect``. Woken all at once, their trio tasks would all run in the next
    guest tick, and nothing else would be served for as long as that takes (tens of ms
    for 10,000). Woken :data:`DEPARTURES_PER_PASS` per pass (by :meth:`run`, a task of
    the guest run), a tick stays short and the clients that stay are served in between.
    The trio side paces what follows a departure itself (:mod:`._pacing`); this paces
    its first step.
    """

    def __init__(self) -> None:
        self._due: deque[tuple[trio.lowlevel.Task, outcome.Outcome[Any]]] = deque()
        self._idle = trio.lowlevel.ParkingLot()
        #: Whether :meth:`run` wakes them; before it starts and once it has ended (the
        #: run is ending: every task must be free to unwind), :meth:`add` wakes at once.
        self._running = False

    def add(self, task: trio.lowlevel.Task, result: outcome.Outcome[Any]) -> None:
        """Wake ``task`` with ``result`` in its turn. Called on the loop's thread between
        guest ticks, as the bridge's other wakeups are."""
        if not self._running:
            trio.lowlevel.reschedule(task, result)
            return
        self._due.append((task, result))
        self._idle.unpark_all()

    async def run(self) -> None:
        self._running = True
        try:
            while True:
                if not self._due:
                    await self._idle.park()
                    continue
                for _ in range(min(DEPARTURES_PER_PASS, len(self._due))):
                    trio.lowlevel.reschedule(*self._due.popleft())
                await trio.lowlevel.checkpoint()
        finally:
            self._running = False
            while self._due:
                trio.lowlevel.reschedule(*self._due.popleft())


def _server_cancelled() -> trio.BrokenResourceError:
    return trio.BrokenResourceError("the asyncio server cancelled this call's receive or send")


async def _resume(coroutine: Coroutine[Any, Any, Any], suspended_on: Any) -> Any:
    return await _Resumed(coroutine, suspended_on)


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _Resumed:
    """Awaitable that goes on with a coroutine already suspended on ``suspended_on``."""

    __slots__ = ("_coroutine", "_suspended_on")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], suspended_on: Any) -> None:
        self._coroutine = coroutine
        self._suspended_on = suspended_on

    def __await__(self) -> Generator[Any, Any, Any]:
        yielded = self._suspended_on
        while True:
            try:
                try:
                    sent = yield yielded
                except BaseException as exc:
                    yielded = self._coroutine.throw(exc)
                else:
                    yielded = self._coroutine.send(sent)
            except StopIteration as stop:
                return stop.value
