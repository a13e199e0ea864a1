"""ShutdownSignals in this process: one shutdown request, later signals ignored."""

import os
import signal
import time

from ahawam_ros.ros.spin import ShutdownSignals
import pytest


@pytest.fixture
def saved_handlers():
    """Restore this process's SIGINT / SIGTERM handlers after the test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_signals_request_one_shutdown_and_never_raise(saved_handlers):
    with ShutdownSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert signals.requested.is_set() and signals.count == 3
    # The process is stopping: a late signal after the block must not kill it either.
    os.kill(os.getpid(), signal.SIGTERM)
    assert signals.count == 4


def test_raise_first_interrupts_once_and_not_during_cleanup(saved_handlers):
    with ShutdownSignals(raise_first=True) as signals:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # not reached: the handler runs at the next bytecode
        signals.begin_shutdown()
        os.kill(os.getpid(), signal.SIGINT)  # during the cleanup: ignored
    assert signals.count == 2


def test_previous_handlers_return_when_no_shutdown_began(saved_handlers):
    before = signal.getsignal(signal.SIGINT)
    with ShutdownSignals():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


def test_restore_brings_the_handlers_back_even_after_a_shutdown(saved_handlers):
    before = signal.getsignal(signal.SIGTERM)
    with ShutdownSignals(restore=True) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
    assert signals.requested.is_set() and signal.getsignal(signal.SIGTERM) is before
