"""The executor: local and Ray run the same tasks to the same results; failures are kept, not dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unlearnkit.core.training import TrainConfig
from unlearnkit.errors import ParameterError, UnknownNameError
from unlearnkit.running.executor import EXECUTORS, Task, TaskFailedError, make_executor, raise_failures
from unlearnkit.running.populations import PopulationConfig, member_outputs, train_member


def threads_inside() -> int:
    return torch.get_num_threads()


def fails(message: str) -> None:
    raise RuntimeError(message)


def fails_once(marker: str) -> str:
    """Fails on the first attempt (leaves a marker file), succeeds on the second."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise OSError("transient failure")
    return "second attempt"


DIGITS = PopulationConfig(
    dataset="digits",
    model="mlp",
    model_kwargs={"widths": [16]},
    train=TrainConfig(epochs=3, batch_size=32, lr=0.1),
    forget_classes=(3,),
)


def train_and_collect(seed: int, cache_dir: str) -> torch.Tensor:
    train_member(DIGITS.to_dict(), "seen", seed, cache_dir)
    return member_outputs(DIGITS.to_dict(), "seen", seed, cache_dir)["logits"]  # type: ignore[no-any-return]


def test_registry_and_validation():
    assert set(EXECUTORS.names()) == {"local", "ray"}
    with pytest.raises(UnknownNameError, match="ray"):
        make_executor("rayy")
    message = r"'threads' parameter of the local executor must be an int in \[1, inf\); got 0"
    with pytest.raises(ParameterError, match=message):
        make_executor("local", threads=0)
    with pytest.raises(ParameterError, match="'num_cpus' parameter of the ray executor"):
        make_executor("ray", num_cpus=-1)
    with pytest.raises(ParameterError, match="unique keys; 'a' appears twice"):
        make_executor("local").map([Task("a", threads_inside), Task("a", threads_inside)])


def test_local_pins_threads_keeps_order_and_restores():
    before = torch.get_num_threads()
    results = make_executor("local", threads=1).map([Task(str(i), pow, {"base": i, "exp": 2}) for i in range(5)])
    assert [r.value for r in results] == [0, 1, 4, 9, 16]
    assert make_executor("local", threads=1).map([Task("t", threads_inside)])[0].value == 1
    assert torch.get_num_threads() == before


def test_local_failure_is_reported_retried_and_others_survive(tmp_path):
    tasks = [
        Task("ok", pow, {"base": 2, "exp": 5}),
        Task("bad", fails, {"message": "boom"}),
        Task("flaky", fails_once, {"marker": str(tmp_path / "m")}),
    ]
    ok, bad, flaky = make_executor("local", retries=2).map(tasks)
    assert ok.ok and ok.value == 32 and ok.attempts == 1
    assert not bad.ok and bad.value is None and bad.attempts == 3 and bad.error == "RuntimeError: boom"
    assert flaky.ok and flaky.value == "second attempt" and flaky.attempts == 2
    with pytest.raises(TaskFailedError, match=r"1 of 3 tasks failed: bad \(3 attempts\): RuntimeError: boom"):
        raise_failures([ok, bad, flaky])
    no_retry = make_executor("local", retries=0).map([Task("bad", fails, {"message": "x"})])[0]
    assert no_retry.attempts == 1 and not no_retry.ok


@pytest.fixture(scope="module")
def ray_results(tmp_path_factory):
    """One Ray run (start-up costs seconds): two seeded trainings, a failing task, a flaky one."""
    root = tmp_path_factory.mktemp("ray")
    tasks = [Task(f"train/{s}", train_and_collect, {"seed": s, "cache_dir": str(root / "ray")}) for s in (0, 1)]
    tasks += [
        Task("bad", fails, {"message": "worker boom"}),
        Task("flaky", fails_once, {"marker": str(root / "marker")}),
        Task("threads", threads_inside),
    ]
    import ray

    with make_executor("ray", retries=1, num_cpus=2) as executor:
        results = executor.map(tasks)
        again = executor.map([Task("threads", threads_inside)])  # the same cluster serves a second call
        assert ray.is_initialized() and again[0].value == 1
    assert not ray.is_initialized()  # the cluster it started is shut down on close
    return root, results


def test_ray_matches_local_for_the_same_seeds(ray_results):
    root, results = ray_results
    local = make_executor("local").map(
        [Task(f"train/{s}", train_and_collect, {"seed": s, "cache_dir": str(root / "local")}) for s in (0, 1)]
    )
    for r_ray, r_local in zip(results[:2], local, strict=True):
        assert r_ray.ok and r_local.ok
        assert torch.equal(r_ray.value, r_local.value)  # bitwise: both pinned to one thread
    assert not torch.equal(results[0].value, results[1].value)


def test_ray_reports_failures_and_keeps_other_results(ray_results):
    _, results = ray_results
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == ["train/0", "train/1", "bad", "flaky", "threads"]
    assert not by_key["bad"].ok and by_key["bad"].attempts == 2
    assert by_key["bad"].error == "RuntimeError: worker boom"
    assert by_key["flaky"].ok and by_key["flaky"].attempts == 2 and by_key["flaky"].value == "second attempt"
    assert by_key["threads"].value == 1


def sleeps(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "woke"


def swallows_errors(seconds: float) -> str:
    import time

    try:  # library code that turns any Exception into a value (scikit-learn's cross-validation does)
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "woke"


def test_a_task_that_catches_the_timeout_still_fails_as_timed_out():
    (r,) = make_executor("local", retries=0, time_limit=0.2).map([Task("t", swallows_errors, {"seconds": 3.0})])
    assert not r.ok and r.value is None and "ran past its time limit (0.2 s)" in r.error and r.seconds < 2


def test_the_membership_attack_lets_the_timeout_through():
    """The attack's cross-validation once caught the timer inside a fit and scored that fold NaN."""
    from unlearnkit.evaluation.metrics import loss_attack_accuracy
    from unlearnkit.running.executor import TaskTimeoutError, run_pinned

    g = torch.Generator().manual_seed(0)
    members, nonmembers = torch.rand(200_000, generator=g), torch.rand(200_000, generator=g) + 0.5
    big = {"member_losses": members, "nonmember_losses": nonmembers}
    assert run_pinned(loss_attack_accuracy, {k: v[:100] for k, v in big.items()}, 1, 30.0) > 0.7  # in time: a score
    with pytest.raises(TaskTimeoutError):  # scikit-learn imported above: the timer fires inside a fit
        run_pinned(loss_attack_accuracy, {**big, "repeats": 50}, 1, 0.5)


def test_time_limit_and_results_as_they_finish():
    seen = []
    ex = make_executor("local", retries=0, time_limit=0.3)
    slow, fast = ex.map([Task("slow", sleeps, {"seconds": 5.0}), Task("fast", sleeps, {"seconds": 0.0})],
                        on_result=lambda r: seen.append(r.key))  # fmt: skip
    assert not slow.ok and slow.seconds < 2
    assert slow.error.endswith("TaskTimeoutError: the task ran past its time limit (0.3 s)")
    assert fast.ok and fast.value == "woke"
    assert seen == ["slow", "fast"]
    with pytest.raises(ParameterError, match="'time_limit' parameter of the local executor"):
        make_executor("local", time_limit=0)
