"""In-process delivery of context handles by topic name (runtime/intra_process.py)."""

import logging

from ahawam_ros.runtime.intra_process import IntraProcessTopics
import pytest


def test_delivers_to_the_subscribers_of_that_topic_only_in_the_callers_thread():
    topics = IntraProcessTopics()
    got = []
    topics.subscribe('/robot/world_context', lambda handle: got.append(('a', handle)))
    topics.subscribe('/robot/world_context', lambda handle: got.append(('b', handle)))
    topics.subscribe('/other/world_context', lambda handle: got.append(('c', handle)))
    assert topics.deliver('/robot/world_context', 'h:1') == 2
    assert got == [('a', 'h:1'), ('b', 'h:1')]  # synchronous: done when deliver returns
    assert topics.subscribers('/robot/world_context') == 2
    assert topics.deliver('/nobody/world_context', 'h:2') == 0


def test_unsubscribe_stops_delivery_and_tolerates_repeats():
    topics = IntraProcessTopics()
    got = []
    token = topics.subscribe('/world_context', got.append)
    topics.unsubscribe(token)
    topics.unsubscribe(token)  # shutdown paths may repeat it
    assert topics.deliver('/world_context', 'h:1') == 0 and got == []


def test_a_failing_subscriber_is_logged_once_and_never_reaches_the_publisher(caplog):
    topics = IntraProcessTopics()
    got = []

    def broken(handle):
        raise RuntimeError(f'cannot use {handle}')

    topics.subscribe('/world_context', broken)
    topics.subscribe('/world_context', got.append)
    with caplog.at_level(logging.ERROR):
        for seq in range(3):
            assert topics.deliver('/world_context', f'h:{seq}') == 2
    assert got == ['h:0', 'h:1', 'h:2']  # the healthy subscriber still got every handle
    errors = [r for r in caplog.records if 'cannot use' in r.getMessage()]
    assert len(errors) == 1 and '/world_context' in errors[0].getMessage()


def test_topic_names_must_be_fully_qualified():
    with pytest.raises(ValueError, match='fully qualified'):
        IntraProcessTopics().subscribe('world_context', print)
