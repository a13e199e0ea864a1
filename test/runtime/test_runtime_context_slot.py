"""Latest-wins context slot and the in-process handle registry."""

import random
import subprocess
import sys
import threading
import time

from ahawam_ros.runtime import context_slot
from ahawam_ros.runtime.context_slot import ContextRegistry, ContextSlot, ContextSnapshot
from ahawam_ros.runtime.context_slot import ContextUnavailableError
import pytest


@pytest.fixture
def fast_switching():
    # force frequent thread switches so that races have a chance to show
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def test_publish_numbers_from_one_and_latest_is_the_same_object():
    slot = ContextSlot(ContextRegistry())
    assert slot.latest() is None and slot.last_seq == 0
    context = {'kv': [1, 2, 3]}
    first = slot.publish(context, obs_stamp=1.0, publish_time=1.2, planner_latency=0.2, step=5)
    second = slot.publish(object(), obs_stamp=2.0, publish_time=2.1)
    assert (first.seq, second.seq) == (1, 2)
    assert first.context is context  # by reference, never copied
    assert slot.latest() is second
    assert first.age(3.0) == pytest.approx(2.0)
    with pytest.raises(AttributeError):
        second.seq = 7  # snapshots are immutable


def test_offer_installs_only_newer_snapshots_of_the_same_producer():
    producer = ContextSlot(ContextRegistry())
    consumer = ContextSlot(ContextRegistry())
    one, two, three = (producer.publish(i, float(i), float(i)) for i in (1, 2, 3))
    assert consumer.offer(two)
    assert not consumer.offer(one)  # late message
    assert not consumer.offer(two)  # repeated message
    assert consumer.latest() is two
    assert consumer.offer(three) and consumer.latest() is three


def test_offer_accepts_a_restarted_producer_whose_seq_starts_again():
    registry = ContextRegistry()
    consumer = ContextSlot(registry)
    old = ContextSlot(registry)
    for i in range(5):
        consumer.offer(old.publish(i, float(i), float(i)))
    restarted = ContextSlot(registry).publish('new', 9.0, 9.0)
    assert restarted.seq == 1
    assert consumer.offer(restarted) and consumer.latest() is restarted


def test_clear_forgets_the_context_but_seq_keeps_increasing():
    slot = ContextSlot(ContextRegistry())
    slot.publish('a', 0.0, 0.0)
    slot.clear()
    assert slot.latest() is None
    assert slot.publish('b', 1.0, 1.0).seq == 2


def test_concurrent_writers_and_readers_see_whole_snapshots_in_order(fast_switching):
    slot = ContextSlot(ContextRegistry())
    writers, per_writer, total = 3, 300, 900
    published, errors, seen = [], [], set()
    observed = [0, 0, 0]  # newest seq each reader has seen
    done = threading.Event()

    def wait_until_read(seq):
        deadline = time.monotonic() + 30.0  # returns once read; a loaded machine waits
        while max(observed) < seq and time.monotonic() < deadline:
            time.sleep(1e-4)

    def write(w):
        for i in range(per_writer):
            # every field encodes (w, i): a torn snapshot would mix two writers' values
            snap = slot.publish({'w': w, 'i': i}, obs_stamp=w * 1000 + i, publish_time=i,
                                planner_latency=w, step=i)
            published.append(snap.seq)
            if i == per_writer // 2:
                wait_until_read(snap.seq)  # readers certainly run while writers write

    def read(r):
        last = 0
        while not done.is_set():
            snap = slot.latest()
            if snap is None:
                continue
            ctx = snap.context
            whole = (snap.obs_stamp == ctx['w'] * 1000 + ctx['i'] and snap.step == ctx['i']
                     and snap.planner_latency == ctx['w'])
            if snap.seq < last or not whole:
                errors.append((last, snap))
            last = observed[r] = snap.seq
            seen.add(snap.seq)

    readers = [threading.Thread(target=read, args=(r,)) for r in range(3)]
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until_read(total)
    done.set()
    for thread in readers:
        thread.join()
    assert not errors, errors[:3]
    # every publish got its own number: the seq read-increment-store is not racy
    assert sorted(published) == list(range(1, total + 1))
    assert slot.latest().seq == total
    assert len(seen) > 1 and max(seen) == total


def test_concurrent_out_of_order_offers_never_go_backwards(fast_switching):
    producer = ContextSlot(ContextRegistry(capacity=1))
    snapshots = [producer.publish(i, float(i), float(i)) for i in range(2000)]
    consumer = ContextSlot(ContextRegistry())
    chunks = [snapshots[i::4] for i in range(4)]
    for chunk in chunks:
        random.Random(len(chunk)).shuffle(chunk)
    errors = []
    done = threading.Event()

    def read():
        last = 0
        while not done.is_set():
            snap = consumer.latest()
            if snap is not None:
                if snap.seq < last:
                    errors.append((last, snap.seq))
                last = snap.seq

    reader = threading.Thread(target=read)
    offerers = [threading.Thread(target=lambda c=c: [consumer.offer(s) for s in c])
                for c in chunks]
    reader.start()
    for thread in offerers:
        thread.start()
    for thread in offerers:
        thread.join()
    done.set()
    reader.join()
    assert not errors
    assert consumer.latest() is snapshots[-1]


def test_published_snapshots_resolve_by_handle_in_the_process_registry():
    slot = ContextSlot()  # the process-wide registry
    snap = slot.publish('ctx', 1.0, 1.1)
    assert snap.handle.endswith(':1')
    assert context_slot.resolve(snap.handle) is snap
    assert context_slot.process_registry().resolve(snap.handle) is snap


def test_registry_keeps_only_the_newest_snapshots():
    slot = ContextSlot(ContextRegistry(capacity=4))
    registry = slot._registry
    snaps = [slot.publish(i, float(i), float(i)) for i in range(6)]
    for snap in snaps[:2]:
        with pytest.raises(ContextUnavailableError, match='evicted'):
            registry.resolve(snap.handle)
    assert [registry.resolve(s.handle) for s in snaps[2:]] == snaps[2:]


def test_registering_an_unhandled_snapshot_mints_a_handle():
    registry = ContextRegistry()
    snap = ContextSnapshot(context='x', seq=3, obs_stamp=0.0, publish_time=0.0)
    handle = registry.register(snap)
    assert registry.resolve(handle) is snap


@pytest.mark.parametrize('handle', ['', 'garbage', '12:34', 'a.b.c:1', '1.tok.1:x'])
def test_malformed_handles_are_refused(handle):
    with pytest.raises(ContextUnavailableError, match='malformed'):
        ContextRegistry().resolve(handle)


def test_unknown_handle_of_this_registry_is_refused():
    slot = ContextSlot(ContextRegistry())
    snap = slot.publish('ctx', 0.0, 0.0)
    with pytest.raises(ContextUnavailableError, match='unknown'):
        slot._registry.resolve(snap.handle[:-1] + '99')


def test_handle_of_another_registry_is_refused():
    snap = ContextSlot(ContextRegistry()).publish('ctx', 0.0, 0.0)
    with pytest.raises(ContextUnavailableError, match='another registry'):
        ContextRegistry().resolve(snap.handle)


def test_handle_from_another_process_is_refused():
    script = ('from ahawam_ros.runtime.context_slot import ContextSlot\n'
              'print(ContextSlot().publish(object(), 0.0, 0.0).handle)\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=120, check=True)
    handle = result.stdout.strip()
    with pytest.raises(ContextUnavailableError, match='from process .* one process'):
        context_slot.resolve(handle)
