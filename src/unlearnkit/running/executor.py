"""Run many independent trainings: one executor abstraction for the whole project.

Every many-model workload (model populations for the Bayes-advantage test,
benchmark grids) describes its work as :class:`Task` objects — a module-level
function plus keyword arguments — and hands them to an executor:

* ``local`` — in this process, one task after another (the default for small jobs);
* ``ray`` — a local Ray cluster started on demand with as many CPUs as the
  machine has, or an existing cluster (``address``). Ray is imported only here.

Both pin torch's intra-op thread count inside each task (``threads``, default 1),
so a task computes the same numbers on either executor for the same seeds.
A task that raises is retried ``retries`` times; if it still fails its
:class:`TaskResult` carries the error and the other results are kept — nothing
is dropped silently. Results come back in the order of the tasks.

Example:
    >>> from unlearnkit.running.executor import Task, make_executor
    >>> results = make_executor("local").map([Task("a", pow, {"base": 2, "exp": 3})])
    >>> results[0].value
    8
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from unlearnkit.errors import ParameterError, UnlearnkitError
from unlearnkit.optional import optional_import
from unlearnkit.progress import progress_bar
from unlearnkit.registry import Registry
from unlearnkit.validation import Constraint, Interval, NoneOr, validate_parameters


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(**kwargs)``. ``fn`` must be importable (module level) for Ray."""

    key: str
    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """What became of one task: its value, or the error of its last attempt."""

    key: str
    value: Any = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class TaskFailedError(UnlearnkitError):
    """Raised by :func:`raise_failures` when tasks failed after all retries."""


def raise_failures(results: Sequence[TaskResult]) -> None:
    """Raise one error listing every failed task (key, attempts, last error line)."""
    failed = [r for r in results if not r.ok]
    if failed:
        lines = "; ".join(
            f"{r.key} ({r.attempts} attempts): {(r.error or '').strip().splitlines()[-1]}" for r in failed
        )
        raise TaskFailedError(f"{len(failed)} of {len(results)} tasks failed: {lines}")


class TaskTimeoutError(UnlearnkitError):
    """A task ran past the executor's ``time_limit``."""


class _Alarm(BaseException):
    """Raised by the timer inside a task: a BaseException, so that library code which turns a failing
    ``Exception`` into a score (scikit-learn's cross-validation sets ``error_score``) lets it through."""


def run_pinned(fn: Callable[..., Any], kwargs: Mapping[str, Any], threads: int, time_limit: float | None = None) -> Any:
    """Call ``fn(**kwargs)`` with torch pinned to ``threads`` intra-op threads (restored after).

    With ``time_limit`` (seconds) the call is interrupted by :class:`TaskTimeoutError`
    (a SIGALRM timer; available in a process's main thread, where both executors run tasks).
    A task whose timer fired never returns a value, even if code inside it caught the
    interrupt and went on: its result could be half computed.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    use_alarm = time_limit is not None and threading.current_thread() is threading.main_thread()
    fired = False

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        fired = True
        raise _Alarm

    if use_alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(time_limit))  # type: ignore[arg-type]
    try:
        value = fn(**kwargs)
    except _Alarm:
        fired = True
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        torch.set_num_threads(before)
    if fired:
        raise TaskTimeoutError(f"the task ran past its time limit ({time_limit:g} s)")
    return value


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class Executor(ABC):
    """Runs tasks and returns one :class:`TaskResult` per task, in task order."""

    name: ClassVar[str]
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "threads": Interval(int, 1, None),
        "retries": Interval(int, 0, None),
        "time_limit": NoneOr(Interval(float, 0, None, closed="neither")),
    }

    def __init__(self, *, threads: int = 1, retries: int = 1, time_limit: float | None = None) -> None:
        validate_parameters(
            f"the {self.name} executor",
            {"threads": threads, "retries": retries, "time_limit": time_limit},
            Executor.parameter_constraints,
        )
        self.threads = threads
        self.retries = retries
        self.time_limit = time_limit

    @abstractmethod
    def map(
        self,
        tasks: Sequence[Task],
        *,
        progress: bool = False,
        desc: str = "tasks",
        on_result: Callable[[TaskResult], None] | None = None,
    ) -> list[TaskResult]:
        """Run every task; failures are reported in the results, never raised.

        ``on_result`` is called with each task's final result as soon as it is
        known (in completion order), e.g. to append a record to a file.
        """

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "threads": self.threads, "retries": self.retries, "time_limit": self.time_limit}

    def close(self) -> None:
        """Release what the executor holds (a Ray cluster it started); it can still be used afterwards."""
        return None  # the local executor holds nothing

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """One task after another in this process."""

    name = "local"

    def map(
        self,
        tasks: Sequence[Task],
        *,
        progress: bool = False,
        desc: str = "tasks",
        on_result: Callable[[TaskResult], None] | None = None,
    ) -> list[TaskResult]:
        _check_keys(tasks)
        results = []
        for task in progress_bar(tasks, enabled=progress, desc=desc, unit="task"):
            result = TaskResult(task.key)
            start = time.perf_counter()
            while result.attempts <= self.retries:
                result.attempts += 1
                try:
                    result.value = run_pinned(task.fn, task.kwargs, self.threads, self.time_limit)
                    result.error = None
                    break
                except Exception as exc:  # reported in the result, retried first
                    result.error = _describe(exc)
            result.seconds = time.perf_counter() - start
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results


def _ray_entry(
    fn: Callable[..., Any], kwargs: Mapping[str, Any], threads: int, time_limit: float | None
) -> tuple[Any, float]:
    start = time.perf_counter()
    value = run_pinned(fn, kwargs, threads, time_limit)
    return value, time.perf_counter() - start


class RayExecutor(Executor):
    """Tasks on a Ray cluster: local (started on demand, all CPUs) or at ``address``.

    Each task asks Ray for ``threads`` CPUs, so at most ``cpus // threads``
    tasks run at once. A cluster this executor starts stays up across
    :meth:`map` calls (workers keep their loaded datasets) until :meth:`close`
    (or the end of a ``with`` block, or of the process); a cluster that was
    already running is never shut down by it.
    """

    name = "ray"

    def __init__(
        self,
        *,
        threads: int = 1,
        retries: int = 1,
        time_limit: float | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        super().__init__(threads=threads, retries=retries, time_limit=time_limit)
        validate_parameters("the ray executor", {"num_cpus": num_cpus}, {"num_cpus": NoneOr(Interval(int, 1, None))})
        if address is not None and (not isinstance(address, str) or not address):
            raise ParameterError(
                f"The 'address' parameter of the ray executor must be a non-empty str; got {address!r}."
            )
        self.address = address
        self.num_cpus = num_cpus
        self._started = False

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address, "num_cpus": self.num_cpus or os.cpu_count()}

    def map(
        self,
        tasks: Sequence[Task],
        *,
        progress: bool = False,
        desc: str = "tasks",
        on_result: Callable[[TaskResult], None] | None = None,
    ) -> list[TaskResult]:
        _check_keys(tasks)
        if not tasks:
            return []
        ray = optional_import("ray", extra="ray")
        if not ray.is_initialized():
            if self.address is not None:
                ray.init(address=self.address, log_to_driver=False)
            else:
                # workers see the driver's import path, so functions from the caller's own modules unpickle there
                path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
                ray.init(
                    num_cpus=self.num_cpus or os.cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    runtime_env={"env_vars": {"PYTHONPATH": path}},
                )
            self._started = True
        return self._run(ray, tasks, progress, desc, on_result)

    def close(self) -> None:
        if self._started:
            optional_import("ray", extra="ray").shutdown()
            self._started = False

    def _run(
        self,
        ray: Any,
        tasks: Sequence[Task],
        progress: bool,
        desc: str,
        on_result: Callable[[TaskResult], None] | None,
    ) -> list[TaskResult]:
        remote = ray.remote(num_cpus=self.threads, max_retries=0)(_ray_entry)
        results = [TaskResult(t.key) for t in tasks]
        pending: dict[Any, int] = {}

        def submit(i: int) -> None:
            results[i].attempts += 1
            pending[remote.remote(tasks[i].fn, dict(tasks[i].kwargs), self.threads, self.time_limit)] = i

        for i in range(len(tasks)):
            submit(i)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tasks), desc=desc, unit="task", leave=False, dynamic_ncols=True)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    value, seconds = ray.get(done[0])
                    results[i].value, results[i].error = value, None
                    results[i].seconds += seconds
                except Exception as exc:  # RayTaskError wraps the task's own exception
                    cause = getattr(exc, "cause", None)
                    results[i].error = _describe(cause if isinstance(cause, BaseException) else exc)
                    if results[i].attempts <= self.retries:
                        submit(i)
                        continue
                if on_result is not None:
                    on_result(results[i])
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            for ref in pending:  # only on interruption
                ray.cancel(ref, force=True)
        return results


def _check_keys(tasks: Sequence[Task]) -> None:
    seen: set[str] = set()
    for t in tasks:
        if t.key in seen:
            raise ParameterError(f"The 'tasks' parameter must have unique keys; {t.key!r} appears twice.")
        seen.add(t.key)


EXECUTORS: Registry[type[Executor]] = Registry("executor")
EXECUTORS.register("local", LocalExecutor)
EXECUTORS.register("ray", RayExecutor)


def make_executor(name: str = "local", **options: Any) -> Executor:
    """Build an executor by registry name (``local`` or ``ray``) with its options."""
    return EXECUTORS.get(name)(**options)
