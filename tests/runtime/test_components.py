"""Component lifecycle: start in order, stop in reverse, unwind on a failed start, never stop half."""

from __future__ import annotations

import pytest

from qnode_fw.component import ComponentStack, FunctionComponent


def stack_of(names, log, fail_start=(), fail_stop=()):
    stack = ComponentStack("N")

    def starter(n):
        def start():
            if n in fail_start:
                raise RuntimeError(f"{n} cannot start")
            log.append(f"start {n}")
        return start

    def stopper(n):
        def stop():
            log.append(f"stop {n}")
            if n in fail_stop:
                raise RuntimeError(f"{n} cannot stop")
        return stop

    for n in names:
        stack.add(FunctionComponent(n, starter(n), stopper(n)))
    return stack


def test_start_in_order_stop_in_reverse():
    log: list[str] = []
    stack = stack_of(["instruments", "qnics", "control"], log)
    stack.start()
    assert stack.running == ["instruments", "qnics", "control"]
    assert stack.stop() == []
    assert log == ["start instruments", "start qnics", "start control",
                   "stop control", "stop qnics", "stop instruments"]
    assert stack.running == []
    assert stack.stop() == []          # a second stop does nothing


def test_failed_start_stops_what_started_and_raises():
    log: list[str] = []
    stack = stack_of(["a", "b", "c"], log, fail_start={"c"})
    with pytest.raises(RuntimeError, match="c cannot start"):
        stack.start()
    assert log == ["start a", "start b", "stop b", "stop a"]


def test_a_failing_stop_does_not_keep_the_rest_running():
    log: list[str] = []
    stack = stack_of(["a", "b", "c"], log, fail_stop={"b"})
    stack.start()
    failures = stack.stop()
    assert [name for name, _ in failures] == ["b"]
    assert log[-3:] == ["stop c", "stop b", "stop a"]


def test_no_component_added_after_start():
    stack = stack_of(["a"], [])
    stack.start()
    with pytest.raises(RuntimeError):
        stack.add(FunctionComponent("late", lambda: None, lambda: None))
