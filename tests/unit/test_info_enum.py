"""Info and Enum: exposed as prometheus_client exposes them, bad input refused."""

import threading

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioprometheus import Enum, Info, Registry, render
from aioprometheus.formats.binary import BinaryFormatter, decode


def samples(text):
    """{(sample name, sorted labels): value} of a text 0.0.4 exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def types(text):
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def ours_text(registry):
    return render(registry, [])[0].decode()


def theirs_text(registry):
    return prometheus_client.generate_latest(registry).decode()


def test_info_is_exposed_as_prometheus_client_exposes_it():
    ours = Registry()
    Info("build", "Build facts.", registry=ours).set(
        {"host": "a"}, {"version": "1.2.3", "commit": "abc"}
    )
    theirs = prometheus_client.CollectorRegistry()
    prometheus_client.Info("build", "Build facts.", ["host"], registry=theirs).labels(
        "a"
    ).info({"version": "1.2.3", "commit": "abc"})
    assert samples(ours_text(ours)) == samples(theirs_text(theirs))
    assert (
        types(ours_text(ours)) == types(theirs_text(theirs)) == {"build_info": "gauge"}
    )


def test_enum_is_exposed_as_prometheus_client_exposes_it():
    states = ["starting", "running", "stopped"]
    ours = Registry()
    ours_enum = Enum("task_state", "Task state.", states=states, registry=ours)
    theirs = prometheus_client.CollectorRegistry()
    theirs_enum = prometheus_client.Enum(
        "task_state", "Task state.", ["task"], states=states, registry=theirs
    )
    for task, state in [("a", "running"), ("b", "starting"), ("a", "stopped")]:
        ours_enum.set({"task": task}, state)
        theirs_enum.labels(task).state(state)
    assert samples(ours_text(ours)) == samples(theirs_text(theirs))
    assert (
        types(ours_text(ours)) == types(theirs_text(theirs)) == {"task_state": "gauge"}
    )


def test_protobuf_carries_the_same_gauges():
    registry = Registry()
    Info("build", "Build facts.", registry=registry).set(None, {"version": "9"})
    Enum("mode", "Mode.", states=["on", "off"], registry=registry).set({}, "off")
    families = decode(BinaryFormatter().marshall(registry))
    exposed = {
        (
            family.name,
            tuple((p.name, p.value) for p in metric.label),
            metric.gauge.value,
        )
        for family in families
        for metric in family.metric
    }
    assert exposed == {
        ("build_info", (("version", "9"),), 1.0),
        ("mode", (("mode", "on"),), 0.0),
        ("mode", (("mode", "off"),), 1.0),
    }
    assert {family.type for family in families} == {1}  # GAUGE


def test_setting_info_again_replaces_the_facts_for_those_labels_only():
    registry = Registry()
    info = Info("build", "Build facts.", registry=registry)
    info.set({"host": "a"}, {"version": "1"})
    info.set({"host": "b"}, {"version": "1"})
    info.set({"host": "a"}, {"version": "2", "arch": "x86"})
    assert samples(ours_text(registry)) == {
        ("build_info", (("arch", "x86"), ("host", "a"), ("version", "2"))): 1.0,
        ("build_info", (("host", "b"), ("version", "1"))): 1.0,
    }


def test_enum_has_exactly_one_current_state_per_label_set():
    registry = Registry()
    enum = Enum("light", "Light.", states=["red", "amber", "green"], registry=registry)
    for state in ["green", "amber", "red", "red"]:
        enum.set({"at": "x"}, state)
        values = {
            labels["light"]: value
            for labels, value in enum.get_all()
            if labels["at"] == "x"
        }
        assert values == {s: (1 if s == state else 0) for s in enum.states}


@pytest.mark.parametrize(
    "labels, facts, error",
    [
        ({"host": "a"}, {"host": "b"}, ValueError),  # a fact that is also a label
        ({}, {"version": 1}, TypeError),
        ({}, {1: "x"}, TypeError),
        ({}, ["version"], TypeError),
        ({}, {"__name": "x"}, ValueError),  # reserved label name
        ({}, {"bad-name": "x"}, ValueError),
        ("host", {"version": "1"}, TypeError),
    ],
)
def test_bad_info_input_raises_and_changes_nothing(labels, facts, error):
    registry = Registry()
    info = Info("build", "Build facts.", registry=registry)
    info.set({"host": "a"}, {"version": "1"})
    before = ours_text(registry)
    with pytest.raises(error):
        info.set(labels, facts)
    assert ours_text(registry) == before


def test_bad_enum_input_raises_and_changes_nothing():
    registry = Registry()
    enum = Enum("light", "Light.", states=["red", "green"], registry=registry)
    enum.set({"at": "x"}, "red")
    before = ours_text(registry)
    with pytest.raises(ValueError, match="blue"):
        enum.set({"at": "x"}, "blue")
    with pytest.raises(ValueError, match="own name"):
        enum.set({"light": "x"}, "red")
    for refused in (enum.inc, enum.dec):
        with pytest.raises(TypeError):
            refused({"at": "x"})
    assert ours_text(registry) == before


@pytest.mark.parametrize("states", [[], "red", ["red", "red"], ["red", 2], None])
def test_enum_states_are_checked(states):
    with pytest.raises((TypeError, ValueError)):
        Enum("light", "Light.", states=states, registry=Registry())


def test_concurrent_info_sets_leave_one_series_per_label_set():
    registry = Registry()
    info = Info("build", "Build facts.", registry=registry)
    start = threading.Barrier(8)

    def writer(n):
        start.wait()
        for i in range(300):
            info.set({"host": "a"}, {"version": f"{n}.{i}"})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(info.get_all()) == 1
