"""Private: the subprocess backend :class:`SubprocParallelVectorEnv` and its worker.

The ``env_fns`` are pickled with ``cloudpickle``; :func:`_worker` (the process target, found
by its module path in the child, so it works with every start method) builds its copy and
answers one message per command.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle
import numpy as np
from pettingzoo import ParallelEnv

from adv_wrappers.errors import InvalidArgumentError, VectorEnvStateError
from adv_wrappers.vector._layout import (
    Buffers,
    Layout,
    check_same,
    check_same_state,
    describe,
    env_state_space,
)
from adv_wrappers.vector._sync import EnvRunner, ParallelVectorEnv, check_env_fns

_CLOSE_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- subproc


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def _error_message(exc: BaseException) -> tuple:
    """``("error", exc or None, type name, message, traceback text)``; ``exc`` only if it
    survives a pickle round trip."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        portable: BaseException | None = pickle.loads(pickle.dumps(exc))
    except Exception:
        portable = None
    return ("error", portable, type(exc).__qualname__, str(exc), text)


def _worker(index: int, payload: bytes, conn: Any, parent_conn: Any, state: bool = False) -> None:
    """Body of one worker process: build the copy, then serve reset/step/close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes us
    if parent_conn is not None:
        parent_conn.close()
    env = None
    try:
        env = pickle.loads(payload)()
        description = describe(env, f"env_fns[{index}]()")
        state_space = env_state_space(env, f"env_fns[{index}]()") if state else None
        layout = Layout(*description, state_space=state_space)
        buffers = Buffers(layout, 1)
        runner = EnvRunner(env, layout, buffers.row(0))
        conn.send(("ok", description, state_space))
    except Exception as exc:
        conn.send(_error_message(exc))
        if env is not None:
            try:
                env.close()
            except Exception:  # the construction error is the one to report
                pass
        conn.close()
        return
    raw = buffers.raw[0]
    try:
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:  # the parent went away without close()
                break
            if command == "close":
                try:
                    env.close()
                    conn.send(("closed", None))
                except Exception as exc:
                    conn.send(("closed", _error_message(exc)))
                break
            try:
                if command == "step":
                    conn.send(("ok", runner.step(arg), raw))
                elif command == "reset":
                    conn.send(("ok", runner.reset(*arg), raw))
                elif command == "perturb":
                    conn.send(("ok", runner.perturb(arg), raw))
                else:
                    raise InvalidArgumentError(f"unknown worker command {command!r}")
            except Exception as exc:
                conn.send(_error_message(exc))
    finally:
        conn.close()


def _reraise(index: int, message: tuple) -> None:
    _, exc, type_name, text, tb = message
    if exc is None:  # the original could not be pickled: keep its type name and message
        exc = RuntimeError(f"{type_name}: {text}")
    if hasattr(exc, "add_note"):
        exc.add_note(f"(raised in worker {index} of SubprocParallelVectorEnv)")
    raise exc from _RemoteTraceback(tb)


class SubprocParallelVectorEnv(ParallelVectorEnv):
    """``num_envs`` copies of a ParallelEnv, one worker process each, talking over pipes.

    Each ``env_fn`` is pickled with ``cloudpickle`` and called in its worker. Every
    ``reset``/``step`` sends one message to each worker and gets one back (the packed
    results). An exception inside a worker is re-raised here with its original type and
    message and the worker's traceback text as ``__cause__``; the copies are then out of step,
    so the next call must be ``reset()``. Workers ignore SIGINT, exit when told to by
    :meth:`close` (or when this process goes away) and are terminated if they do not within
    10 s.

    Args:
        env_fns: one callable per copy, each returning a ``pettingzoo.ParallelEnv`` with the
            same ``possible_agents`` and spaces.
        context: ``multiprocessing`` start method (``"fork"``, ``"spawn"``,
            ``"forkserver"``); ``None`` uses the platform default, except that ``"spawn"``
            is used when JAX is already imported in this process (forking a process in
            which JAX's threads run can deadlock the child, e.g. with SMAX envs).
        copy: return fresh arrays (default) or views of internal buffers that the next
            call overwrites.
        state: add the copies' global ``state()`` to the infos (module docstring).

    Raises:
        InvalidArgumentError: ``env_fns`` empty, not callables or not picklable; unknown
            ``context``; a callable returned no ParallelEnv; copies differ in
            ``possible_agents`` or spaces; ``state=True`` for an env without ``state_space``.
        UnsupportedSpaceError: a space outside the heterogeneity rule (module docstring); a
            ``state_space`` that is not a ``Box``.
        Any exception an ``env_fn`` raises in its worker (same type and message).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], ParallelEnv]],
        *,
        context: str | None = None,
        copy: bool = True,
        state: bool = False,
    ) -> None:
        self._closed = True  # until construction succeeds: close()/__del__ are no-ops
        env_fns = check_env_fns(env_fns)
        methods = mp.get_all_start_methods()
        if context is not None and context not in methods:
            raise InvalidArgumentError(f"context must be None or one of {methods}; got {context!r}")
        payloads = []
        for i, fn in enumerate(env_fns):
            try:
                payloads.append(cloudpickle.dumps(fn))
            except Exception as exc:
                raise InvalidArgumentError(
                    f"env_fns[{i}] could not be pickled with cloudpickle: {exc}"
                ) from exc
        # Any: typeshed types get_context(str) as BaseContext, which lacks the Process
        # attribute that every concrete context (fork, spawn, forkserver) has
        if context is None and "jax" in sys.modules:  # fork after JAX started can deadlock
            context = "spawn"
        ctx: Any = mp.get_context(context)
        self._conns: list[Any] = []
        self._processes: list[Any] = []
        self._closed = False
        try:
            for i, payload in enumerate(payloads):
                parent_conn, child_conn = ctx.Pipe()
                process = ctx.Process(
                    target=_worker,
                    args=(i, payload, child_conn, parent_conn, bool(state)),
                    name=f"SubprocParallelVectorEnv-worker-{i}",
                    daemon=True,
                )
                process.start()
                child_conn.close()
                self._conns.append(parent_conn)
                self._processes.append(process)
            replies = self._receive_all()
            descriptions = [message[1] for message in replies]
            check_same(descriptions, "env_fns")
            if state:
                check_same_state([message[2] for message in replies], "env_fns")
            agents, obs_spaces, act_spaces = descriptions[0]
            layout = Layout(agents, obs_spaces, act_spaces, state_space=replies[0][2])
            self._setup(len(env_fns), layout, descriptions[0], copy)
        except BaseException:
            self._shutdown(raise_errors=False)
            raise

    def _receive(self, e: int) -> tuple:
        try:
            return self._conns[e].recv()
        except (EOFError, OSError) as exc:
            self._broken = True
            code = self._processes[e].exitcode
            raise VectorEnvStateError(
                f"worker {e} of {type(self).__name__} died (exit code {code})"
            ) from exc

    def _receive_all(self) -> list[tuple]:
        """One reply per worker; re-raise the first worker error after reading them all."""
        self._broken = True  # until every reply is read, the pipes may hold stale replies
        replies = [self._receive(e) for e in range(len(self._conns))]
        self._broken = False
        for e, message in enumerate(replies):
            if message[0] == "error":
                _reraise(e, message)
        return replies

    def _exchange(self, commands: Sequence[tuple]) -> list[tuple]:
        """Send one command to every worker, then collect (and store) every reply."""
        if getattr(self, "_broken", False):
            raise VectorEnvStateError(
                f"{type(self).__name__} was interrupted while waiting for its workers; "
                "close() it and build a new one"
            )
        for e, (conn, command) in enumerate(zip(self._conns, commands, strict=True)):
            try:
                conn.send(command)
            except (BrokenPipeError, OSError) as exc:
                self._broken = True
                code = self._processes[e].exitcode
                raise VectorEnvStateError(
                    f"worker {e} of {type(self).__name__} died (exit code {code})"
                ) from exc
        replies = self._receive_all()
        raw = self._buffers.raw
        for e, message in enumerate(replies):
            raw[e] = message[2]
        return replies

    def _reset_copies(self, seeds: list[int | None], options: list[Any]) -> list[dict]:
        replies = self._exchange(
            [("reset", (seed, opts)) for seed, opts in zip(seeds, options, strict=True)]
        )
        return [message[1] for message in replies]

    def _perturb_copies(self, actions: np.ndarray) -> list[dict | None]:
        replies = self._exchange([("perturb", action_row) for action_row in actions])
        return [message[1] for message in replies]

    def _step_copies(self, actions: np.ndarray) -> tuple[list[bool], list[dict], list]:
        replies = self._exchange([("step", action_row) for action_row in actions])
        results = [message[1] for message in replies]
        reset = [r[0] for r in results]
        return reset, [r[1] for r in results], [r[2] for r in results]

    def close(self) -> None:
        """Tell every worker to close its copy and exit; join them (idempotent).

        Raises:
            The first exception an ``env.close()`` raised in a worker (same type).
        """
        self._shutdown(raise_errors=True)

    def _shutdown(self, raise_errors: bool) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        errors: list[tuple[int, tuple]] = []
        for conn, process in zip(self._conns, self._processes, strict=True):
            if process.is_alive():
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
        for e, (conn, process) in enumerate(zip(self._conns, self._processes, strict=True)):
            try:
                # skip replies left over from an interrupted call until the close ack
                while process.is_alive() or conn.poll(0):
                    if not conn.poll(_CLOSE_TIMEOUT_S):
                        break
                    message = conn.recv()
                    if message[0] == "closed":
                        if message[1] is not None:
                            errors.append((e, message[1]))
                        break
            except (EOFError, OSError):
                pass
        for process in self._processes:
            process.join(_CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                process.join(1.0)
        for conn in self._conns:
            conn.close()
        if raise_errors and errors:
            _reraise(*errors[0])
